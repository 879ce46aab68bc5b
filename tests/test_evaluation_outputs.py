"""What a finished run tells about its errors (end to end, on the shared tiny quickstart run): the
predictions files, the ``errors`` block and ``subword_f1`` in metrics.json, train.log and the card,
``ner-evaluate --show-errors``, and ``ner-evaluate --compare`` of two runs with different seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from seqeval.metrics import f1_score
from seqeval.metrics.sequence_labeling import get_entities

from ner_experiments.entity_errors import ERROR_KINDS, GOLD_KINDS
from ner_experiments.predictions_file import read_predictions
from ner_experiments.publishing.cli import evaluate_main
from ner_experiments.train.outputs import RunResults
from tests.helpers import TINY_RUN_OVERRIDES, only_run_dir, run_train, sample_sentences

# The tiny run is experiment=quickstart: the Bengali sample data.
LANGUAGE = "bn"


@pytest.fixture(autouse=True)
def _keep_transformers_logging():
    """ner-evaluate quiets transformers' logging for the process; later test files expect its warnings."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    yield
    hf_logging.set_verbosity(verbosity)
    if bars:
        hf_logging.enable_progress_bar()


@pytest.fixture(scope="module")
def other_seed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quickstart with another seed, one epoch: a second model to compare with the shared tiny run."""
    root = tmp_path_factory.mktemp("seed7")
    overrides = [o for o in TINY_RUN_OVERRIDES if not o.startswith("hub")]
    result = run_train(
        *overrides,
        "seed=7",
        "trainer.num_train_epochs=1",
        f"paths.output_dir={root / 'outputs'}",
        f"paths.cache_dir={root / 'cache'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return only_run_dir(root / "outputs")


def _gold_entities(split: str) -> int:
    return sum(len(get_entities(list(tags))) for _, tags in sample_sentences(LANGUAGE, split))


@pytest.mark.parametrize("split", ["test", "validation"])
def test_predictions_file_has_every_word_and_rescores_to_metrics_json(tiny_run: Path, split: str) -> None:
    """One line per word, 3 columns, the data's gold tags; seqeval on the file gives metrics.json's F1
    exactly (validation: the best checkpoint's predictions, which training's evaluation scored)."""
    path = tiny_run / "predictions" / f"{split}.conll"
    lines = path.read_text(encoding="utf-8").split("\n")
    sentences = sample_sentences(LANGUAGE, split)
    word_lines = [line for line in lines if line]
    assert len(word_lines) == sum(len(words) for words, _ in sentences)
    assert all(len(line.split("\t")) == 3 for line in word_lines)
    file = read_predictions(path)
    assert file.tokens == [words for words, _ in sentences]
    assert file.gold == [tags for _, tags in sentences]
    metrics = json.loads((tiny_run / "metrics.json").read_text())[split]
    assert f1_score(file.gold, file.predicted, zero_division=0) == metrics["overall_f1"]


@pytest.mark.parametrize("split", ["test", "validation"])
def test_metrics_json_has_the_errors_block_and_subword_f1(tiny_run: Path, split: str) -> None:
    scores = json.loads((tiny_run / "metrics.json").read_text())[split]
    errors = scores["errors"]
    assert list(errors["overall"]) == list(ERROR_KINDS)
    gold = _gold_entities(split)
    assert sum(errors["overall"][k] for k in GOLD_KINDS) == gold == errors["gold_entities"]
    for kind, row in scores["per_type"].items():
        assert sum(errors["per_type"][kind][k] for k in GOLD_KINDS) == row["support"]
    assert set(errors["semeval"]["overall"]) == {"strict", "exact", "partial", "type"}
    assert errors["semeval"]["overall"]["strict"]["f1"] == pytest.approx(scores["overall_f1"])
    assert 0.0 <= scores["subword_f1"] <= 1.0 and scores["subword"]["f1"] == scores["subword_f1"]
    assert "0.967" in scores["subword"]["note"] and "headline" in scores["subword"]["note"]
    assert scores["subword"]["pieces"] > scores["num_words"]  # Bengali words split into several pieces


def test_train_log_card_and_tracker_summary_show_the_errors(tiny_run: Path) -> None:
    log = (tiny_run / "train.log").read_text(encoding="utf-8")
    assert "test entities by outcome" in log and "validation entities by outcome" in log
    assert "SemEval-2013 F1: strict" in log and "sub-word F1" in log
    card = (tiny_run / "README.md").read_text(encoding="utf-8")
    assert "| Entity type | correct | wrong type | wrong boundary | wrong both | missed | spurious |" in card
    assert "Sub-word F1 (validation " in card and "mBERT: test 0.967" in card
    results = json.loads((tiny_run / "metrics.json").read_text())
    summary = RunResults(**{k: results.get(k) for k in RunResults.__dataclass_fields__}).summary()
    assert summary["test/errors/missed"] == results["test"]["errors"]["overall"]["missed"]
    assert summary["validation/subword_f1"] == results["validation"]["subword_f1"]
    assert (
        summary["test/errors/semeval_partial_f1"]
        == results["test"]["errors"]["semeval"]["overall"]["partial"]["f1"]
    )


def test_ner_evaluate_writes_predictions_and_shows_errors(tiny_run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "eval"
    code = evaluate_main(
        ["--model", str(tiny_run), "--split", "test", "--output-dir", str(out), "--show-errors", "2"]
    )
    assert code == 0
    assert (out / "predictions" / "test.conll").read_text() == (
        tiny_run / "predictions" / "test.conll"
    ).read_text()
    printed = capsys.readouterr().out
    assert "entities by outcome" in printed
    for kind in ERROR_KINDS[1:]:
        assert f"{kind} (" in printed
    assert "    gold: " in printed and "    pred: " in printed and "[" in printed


def test_compare_two_seeds_prints_scores_errors_and_the_bootstrap_interval(
    tiny_run: Path, other_seed_run: Path, capsys
) -> None:
    assert evaluate_main(["--compare", str(tiny_run), str(other_seed_run), "--split", "test"]) == 0
    printed = capsys.readouterr().out
    assert "Paired bootstrap over sentences (10,000 resamples, seed 0): F1(B) - F1(A) = " in printed
    assert "95% interval [" in printed
    assert "Sentences with every entity right: both " in printed
    for row in ("f1 ", "missed", "spurious", "wrong_boundary"):
        assert row in printed
    a = json.loads((tiny_run / "metrics.json").read_text())["test"]["overall_f1"]
    b = json.loads((other_seed_run / "metrics.json").read_text())["test"]["overall_f1"]
    f1_row = next(
        line.split() for line in printed.splitlines() if line.split()[:1] == ["f1"] and len(line.split()) == 4
    )
    assert f1_row[1:3] == [f"{a:.4f}", f"{b:.4f}"]


def test_compare_refuses_different_data(tiny_run: Path, tmp_path: Path, capsys) -> None:
    other = tmp_path / "other.conll"
    other.write_text("x\tO\tO\n\n", encoding="utf-8")
    assert evaluate_main(["--compare", str(tiny_run), str(other)]) == 2
    assert "not the same sentences" in capsys.readouterr().err
    assert evaluate_main(["--compare", str(tiny_run), str(tmp_path / "nothing")]) == 2
    assert "no such run directory" in capsys.readouterr().err


def test_validation_predictions_are_the_best_checkpoints(tiny_run: Path, tmp_path: Path) -> None:
    """The saved model is the best checkpoint: scoring it again predicts exactly the run's validation file
    (which training took from the evaluation that picked that checkpoint, not from a second pass)."""
    out = tmp_path / "validation"
    assert evaluate_main(["--model", str(tiny_run), "--split", "validation", "--output-dir", str(out)]) == 0
    again = (out / "predictions" / "validation.conll").read_text(encoding="utf-8")
    assert again == (tiny_run / "predictions" / "validation.conll").read_text(encoding="utf-8")
