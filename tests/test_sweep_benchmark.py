"""benchmarks/sweep_benchmark.py: its command-line checks, the target verdict on given numbers, and one
run at the smallest scale (tiny model, a few WikiANN sentences, two trials per side)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import sweep_benchmark
from tests.helpers import REPO_ROOT
from tests.helpers import SHARED_DATA as DATA_ROOT


def _problems(*argv: str) -> list[str]:
    return sweep_benchmark.validate_arguments(sweep_benchmark.parse_arguments(list(argv)))


def test_option_checks(tmp_path):
    root = ["--data-root", str(tmp_path)]
    (tmp_path / "wikiann").mkdir()
    assert _problems(*root) == []
    assert _problems(*root, "--trials", "1", "--epochs", "5,2", "--confirm", "0,2") == [
        "--trials 1: give at least 2 (pruning compares trials)",
        "--epochs 5,2: give LOW,HIGH with 1 <= LOW <= HIGH, e.g. 2,8",
        "--confirm 0,2: give TOP_K,SEEDS, both >= 1, e.g. 2,2",
    ]
    assert _problems("--data-root", "/nonexistent", "--model", "/nonexistent") == [
        "--model /nonexistent: no such folder",
        "--data-root /nonexistent: it has no folder wikiann/",
    ]


def _side(steps: int, mean: float | None, std: float | None) -> dict:
    confirmed = {"params": {"trainer.learning_rate": 5e-5}, "mean": mean, "std": std, "n_seeds": 3}
    return {"search_steps": steps, "confirmed": confirmed if mean is not None else None}


def test_target_verdict_names_the_criterion_that_held():
    held = sweep_benchmark.target_verdict(_side(1000, 0.60, 0.002), _side(350, 0.597, 0.003))
    assert held["step_ratio"] == 0.35 and held["held"] and held["tolerance_points"] == 0.5
    assert "within 0.5 F1 point" in held["why"]
    # A gap of 2 points is within a seed std of 3 points: the larger tolerance applies.
    by_std = sweep_benchmark.target_verdict(_side(1000, 0.60, 0.03), _side(400, 0.58, 0.01))
    assert (
        by_std["held"] and by_std["gap_f1_points"] == 2.0 and "within the seed std (3.00 pt)" in by_std["why"]
    )
    too_many_steps = sweep_benchmark.target_verdict(_side(1000, 0.60, 0.01), _side(410, 0.61, 0.01))
    assert not too_many_steps["held"] and not too_many_steps["steps_ok"] and too_many_steps["f1_ok"]
    assert "41.0% of the unpruned search (> 40%)" in too_many_steps["why"]
    worse = sweep_benchmark.target_verdict(_side(1000, 0.60, 0.001), _side(300, 0.59, 0.002))
    assert not worse["held"] and "NOT within 0.5 F1 point" in worse["why"]
    missing = sweep_benchmark.target_verdict(_side(1000, 0.60, 0.01), _side(300, None, None))
    assert not missing["held"] and missing["why"] == "a side has no confirmed configuration"


@pytest.mark.slow
def test_tiny_sweep_benchmark_runs_both_sides_and_confirms_them(tmp_path):
    """Two train.py sweeps and their confirmations: over a minute even at this scale (data loading)."""
    if not (DATA_ROOT / "wikiann").is_dir():
        pytest.skip(f"no WikiANN data under {DATA_ROOT}")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.sweep_benchmark", "--model", "tiny", "--out", str(tmp_path),
         "--train-sentences", "32", "--eval-sentences", "16", "--trials", "2", "--epochs", "1,2",
         "--confirm", "1,1", "--data-root", str(DATA_ROOT)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    for side in ("unpruned", "pruned"):
        r = results["sides"][side]
        assert r["search_steps"] > 0 and r["confirm_steps"] > 0
        assert sum(r["trials"].values()) == 2
        assert r["confirmed"]["n_seeds"] == 2  # the search trial and one more seed
        assert Path(tmp_path / side / "sweep" / "confirm.csv").is_file()
    assert results["sides"]["unpruned"]["trials"]["PRUNED"] == 0
    assert results["target"]["step_ratio"] == pytest.approx(
        results["sides"]["pruned"]["search_steps"] / results["sides"]["unpruned"]["search_steps"], abs=1e-4
    )
    assert "Step ratio (pruned / unpruned search):" in result.stdout
    assert (tmp_path / "results.md").read_text().count("| search: training steps |") == 1
