"""trainer.evals_per_epoch outside a sweep: evaluations within epochs, checkpoints at new bests only,
and a run killed after its first checkpoint resumes to the results of the run never stopped."""

from __future__ import annotations

import json

import pytest

from tests.helpers import kill_after_first_checkpoint, only_run_dir, run_train

OVERRIDES = (
    "experiment=quickstart",
    "trainer.num_train_epochs=2",
    "trainer.evals_per_epoch=2",
    "run_test=false",
)


@pytest.mark.slow
def test_two_evaluations_per_epoch_and_resume_from_the_best_checkpoint(tmp_path):
    cache = f"paths.cache_dir={tmp_path / 'cache'}"
    whole = run_train(*OVERRIDES, f"paths.output_dir={tmp_path / 'whole'}", cache)
    assert whole.returncode == 0, whole.stderr[-3000:]
    run_dir = only_run_dir(tmp_path / "whole")
    log = (run_dir / "train.log").read_text()
    assert [f"epoch {e}" in log for e in ("0.50", "1.00", "1.50", "2.00")] == [True] * 4
    uninterrupted = json.loads((run_dir / "metrics.json").read_text())

    overrides = [*OVERRIDES, f"paths.output_dir={tmp_path / 'killed'}", cache]
    kill_after_first_checkpoint(overrides, tmp_path / "killed")
    resumed = run_train(*overrides, "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((only_run_dir(tmp_path / "killed") / "metrics.json").read_text())
    assert metrics["train"]["global_step"] == uninterrupted["train"]["global_step"]
    # Throughput totals were kept in the best-only checkpoint. One batch more at most: a checkpoint
    # written within an epoch also counts the batch accelerate's loader had already fetched for the next step.
    assert 0 <= metrics["train"]["samples"] - uninterrupted["train"]["samples"] <= 16
    assert metrics["validation"] == uninterrupted["validation"]
