"""Evaluating a saved model: the same metrics as training, any configured data set, confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ner_experiments.errors import DataError
from ner_experiments.publishing.cli import evaluate_main
from ner_experiments.publishing.confusion import entity_confusion
from ner_experiments.publishing.evaluate import evaluate_saved_model
from tests.helpers import make_conll_dir, only_run_dir, run_train, sample_sentences, snapshot


def test_scores_equal_the_training_runs_test_scores(tiny_run: Path, tmp_path: Path) -> None:
    result = evaluate_saved_model(str(tiny_run), [], "test", tmp_path / "eval", show_progress=False)
    trained = json.loads((tiny_run / "metrics.json").read_text())
    assert result.metrics["test"] == trained["test"]  # same features, predictions and scoring as training
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert saved["test"] == trained["test"] and saved["run"]["dataset"] == trained["run"]["dataset"]
    assert (tmp_path / "eval" / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    confusion = json.loads((tmp_path / "eval" / "confusion_matrix.json").read_text())
    gold_total = sum(sum(row) for row in confusion["matrix"][:-1])
    assert confusion["labels"][-1] == "none" and gold_total == sum(
        r["support"] for r in trained["test"]["per_type"].values()
    )
    assert "overall" in result.table and "PER" in result.table


def test_cli_with_hydra_dataset_overrides(tiny_run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "en"
    code = evaluate_main(
        [
            "--model",
            str(tiny_run / "model"),
            "--split",
            "validation",
            "--output-dir",
            str(out),
            "dataset=sample",
            "dataset.language=en",
            "dataset.max_eval_samples=20",
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["validation"]["num_sentences"] == 20 and metrics["run"]["language"] == "en"
    assert "validation (20 sentences" in capsys.readouterr().out


def test_cli_validation_scores_equal_the_runs_metrics_exactly(tiny_run: Path, tmp_path: Path) -> None:
    """ner-evaluate --split validation on the saved model gives metrics.json's validation scores, to the bit."""
    out = tmp_path / "validation"
    assert evaluate_main(["--model", str(tiny_run), "--split", "validation", "--output-dir", str(out)]) == 0
    trained = json.loads((tiny_run / "metrics.json").read_text())
    assert json.loads((out / "metrics.json").read_text())["validation"] == trained["validation"]


def test_a_bf16_run_records_the_scores_ner_evaluate_gives(tmp_path: Path) -> None:
    """Training in bf16 autocast (trainer=fast on CPUs with AVX512-BF16/AMX) still scores in fp32, as the
    model is saved: ner-evaluate reproduces the run's validation scores exactly."""
    out = tmp_path / "out"
    result = run_train(
        "experiment=quickstart",
        "trainer.num_train_epochs=1",
        "trainer.precision=bf16",
        "dataset.max_eval_samples=20",
        f"paths.output_dir={out}",
        f"paths.cache_dir={tmp_path / 'cache'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = only_run_dir(out)
    trained = json.loads((run_dir / "metrics.json").read_text())
    assert trained["run"]["precision"] == "bf16"
    scored = tmp_path / "scored"
    assert evaluate_main(["--model", str(run_dir), "--split", "validation", "--output-dir", str(scored)]) == 0
    assert json.loads((scored / "metrics.json").read_text())["validation"] == trained["validation"]


def test_default_output_dir_is_inside_the_run_and_never_overwritten(run_copy: Path) -> None:
    first = evaluate_saved_model(
        str(run_copy), ["dataset.max_eval_samples=5"], "validation", show_progress=False
    )
    assert first.output_dir == run_copy / "evaluations" / "sample_bn-validation"
    assert first.metrics["validation"]["num_sentences"] == 5
    before = snapshot(first.output_dir)
    second = evaluate_saved_model(
        str(run_copy), ["dataset.max_eval_samples=6"], "validation", show_progress=False
    )
    assert second.output_dir == run_copy / "evaluations" / "sample_bn-validation-2"
    assert second.metrics["validation"]["num_sentences"] == 6
    assert snapshot(first.output_dir) == before


def test_language_override_re_derives_the_data_set_and_keeps_earlier_evaluations(
    run_copy: Path, capsys
) -> None:
    """A run trained on the sample's bn set, scored on its en set by ``dataset.language=en`` alone: the
    data set's name and config follow the language (the saved training config keeps its interpolations)."""
    english_test = sample_sentences("en", "test")
    for attempt in (1, 2):
        assert evaluate_main(["--model", str(run_copy), "dataset.language=en"]) == 0
        folder = run_copy / "evaluations" / ("sample_en-test" if attempt == 1 else "sample_en-test-2")
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["run"]["language"] == "en" and metrics["run"]["dataset_name"] == "sample_en"
        assert metrics["test"]["num_sentences"] == len(english_test)
        assert metrics["test"]["num_words"] == sum(len(words) for words, _ in english_test)
        if attempt == 1:
            first = snapshot(folder)
    assert snapshot(run_copy / "evaluations" / "sample_en-test") == first
    assert "results: " in capsys.readouterr().out


def test_an_output_dir_holding_an_evaluation_is_refused(tiny_run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "eval"
    assert (
        evaluate_main(["--model", str(tiny_run), "--output-dir", str(out), "dataset.max_eval_samples=3"]) == 0
    )
    before = snapshot(out)
    capsys.readouterr()
    assert (
        evaluate_main(["--model", str(tiny_run), "--output-dir", str(out), "dataset.max_eval_samples=3"]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and err[0].startswith("error: --output-dir") and "already holds an evaluation" in err[0]
    )
    assert snapshot(out) == before


def test_data_with_labels_the_model_does_not_know(tiny_run: Path, tmp_path: Path, capsys) -> None:
    sentences = [(["Paris", "Jazz", "Festival"], ["B-LOC", "B-MISC", "I-MISC"])]
    data_dir = make_conll_dir(tmp_path / "data", {s: sentences for s in ("train", "validation", "test")})
    with pytest.raises(DataError, match="MISC"):
        evaluate_saved_model(
            str(tiny_run), ["dataset=conll_files", f"dataset.data_dir={data_dir}"], "test", tmp_path / "o"
        )
    # on the command line: one line, exit 2 (docs/errors.md)
    args = ["--model", str(tiny_run), "dataset=conll_files", f"dataset.data_dir={data_dir}"]
    assert evaluate_main([*args, "--output-dir", str(tmp_path / "cli")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(err) == 1 and "that the model does not predict" in err[0]


def test_cli_errors_are_one_line(tiny_run: Path, tmp_path: Path, capsys) -> None:
    assert evaluate_main(["--model", str(tiny_run), "dataset=no_such_dataset"]) == 2
    assert evaluate_main(["--model", str(tmp_path / "missing"), "dataset=sample"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert "no_such_dataset" in err[0] and "does not exist" in err[1]


def test_entity_confusion_counts_types_misses_and_spurious() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG", "B-LOC", "O"]]
    confusion = entity_confusion(gold, pred)
    labels = confusion["labels"]
    cell = {(r, c): confusion["matrix"][i][j] for i, r in enumerate(labels) for j, c in enumerate(labels)}
    assert labels == ["LOC", "ORG", "PER", "none"]
    assert cell[("PER", "PER")] == 1 and cell[("LOC", "ORG")] == 1
    assert cell[("ORG", "none")] == 1 and cell[("none", "LOC")] == 1
