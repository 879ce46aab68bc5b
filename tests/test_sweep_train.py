"""Sweeps of the real train.py (tiny random BERT, shipped sample data, CPU, offline)."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import sqlite3
import subprocess
import time

import optuna
import pytest
from optuna.trial import TrialState

from tests.helpers import TRAIN_PY, run_script, script_command
from tests.sweep_helpers import SWEEP_ENV, sweep_env, wandb_run_view

QUICK = "quick-tiny-sample_bn"


def run_train_sweep(out, *overrides: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    out.mkdir(parents=True, exist_ok=True)
    return run_script(
        TRAIN_PY, "-m", "sweep=quick", "experiment=quickstart",
        f"paths.output_dir={out}", "dataset.max_train_samples=64", "dataset.max_eval_samples=32",
        "hydra.sweeper.plots=false", *overrides, env=SWEEP_ENV, cwd=out, timeout=timeout,
    )  # fmt: skip


def load_quick(out) -> optuna.Study:
    return optuna.load_study(study_name=QUICK, storage=f"sqlite:///{out / 'optuna' / (QUICK + '.db')}")


def _progress_so_far(out) -> tuple[int, bool]:
    """(trials created, whether trial 1 has reported an evaluation), read from the database read-only.

    Not through optuna: opening an RDB storage creates its schema when it finds none, and doing that
    while the sweeper creates it failed on a UNIQUE constraint (alembic_version) in CI.
    """
    db = out / "optuna" / (QUICK + ".db")
    if not db.exists():
        return 0, False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
            created = con.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
            reported = con.execute(
                "SELECT COUNT(*) FROM trial_intermediate_values AS v JOIN trials AS t"
                " ON v.trial_id = t.trial_id WHERE t.number = 1"
            ).fetchone()[0]
    except sqlite3.OperationalError:  # no schema yet, or locked for a moment by a write
        return 0, False
    return created, reported > 0


def test_quick_sweep_of_train_py_completes_and_best_json_matches_storage(tmp_path):
    # Two trials at once in joblib worker processes: they report to the study through its storage.
    proc = run_train_sweep(
        tmp_path,
        "hydra.sweeper.n_trials=2",
        "trainer.num_train_epochs=1",
        "hydra/launcher=local_parallel",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.confirm.top_k=0",  # the confirmation stage: tests/test_sweep_confirm.py
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = load_quick(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    for t in study.trials:
        assert t.intermediate_values, "training reported no evaluation to its trial"
        assert t.user_attrs["steps_trained"] == 4  # 64 sentences, batch 16, 1 epoch
    (best_json,) = tmp_path.glob("multirun/*/*/best.json")  # multirun/<date>/<time>_<model>-<dataset>/
    sweep_dir = best_json.parent
    best = json.loads(best_json.read_text())
    assert best["best_trial"] == study.best_trial.number
    assert best["best_value"] == pytest.approx(study.best_value)
    assert (sweep_dir / "trials.csv").is_file()
    assert "best trial" in proc.stdout
    for job in ("trial-0", "trial-1"):  # the trials' run dirs are in the sweep dir, named by trial number
        assert (sweep_dir / job / "train.log").is_file()


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the whole demo: a busy shared machine can slow it down many times
def test_quick_demo_shows_differing_nonzero_scores_and_a_pruned_trial(tmp_path):
    # The documented demo, as is: python train.py -m sweep=quick experiment=quickstart
    proc = run_script(
        TRAIN_PY,
        "-m",
        "sweep=quick",
        "experiment=quickstart",
        f"paths.output_dir={tmp_path}",
        env=SWEEP_ENV,
        cwd=tmp_path,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = load_quick(tmp_path)
    search = [t for t in study.trials if "confirm_of" not in t.user_attrs]
    complete = [t for t in search if t.state == TrialState.COMPLETE]
    pruned = [t for t in search if t.state == TrialState.PRUNED]
    table = [(t.number, t.state.name, t.value, t.params) for t in search]
    assert len(complete) + len(pruned) == len(search) == 8, table
    assert len(complete) >= 2 and all(t.value > 0 for t in complete), table
    assert len({t.value for t in complete}) >= 2, table
    assert pruned, table
    longest = max(t.user_attrs["steps_trained"] for t in complete)
    assert all(t.user_attrs["steps_trained"] < longest for t in pruned), table
    (sweep_dir,) = {p.parent for p in tmp_path.glob("multirun/*/*/best.json")}
    assert (sweep_dir / "intermediate_values.png").is_file()
    # The preset confirms its best 2 configurations with 2 more seeds each.
    confirmed = json.loads((sweep_dir / "best.json").read_text())["confirmed"]
    assert confirmed["n_seeds"] == 3 and len(study.trials) == 8 + 4, table


@pytest.mark.slow
def test_killed_train_py_sweep_resumes_and_retries_the_dead_trial(tmp_path):
    overrides = [
        "hydra.sweeper.n_trials=2",
        # Trials long enough (max_steps wins over the sampled epochs) that trial 1 is still training
        # when the test kills the sweep, even on an idle machine.
        "trainer.max_steps=300",
        "trainer.eval_strategy=steps",
        "trainer.eval_steps=5",
        "hydra.sweeper.heartbeat_interval=1",
        "hydra.sweeper.grace_period=5",
        "hydra.sweeper.confirm.top_k=0",
    ]
    command = script_command(
        TRAIN_PY, "-m", "sweep=quick", "experiment=quickstart",
        f"paths.output_dir={tmp_path}", "dataset.max_train_samples=64", "dataset.max_eval_samples=32",
        "hydra.sweeper.plots=false", *overrides,
    )  # fmt: skip
    sweep = subprocess.Popen(
        command, cwd=tmp_path, env=sweep_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.time() + 600
        while True:  # kill it while trial 1 is training (it has reported an evaluation)
            assert sweep.poll() is None, "the sweep ended before it could be killed"
            assert time.time() < deadline
            created, trial_1_reported = _progress_so_far(tmp_path)
            if created == 2 and trial_1_reported:
                break
            time.sleep(0.5)
    finally:
        sweep.kill()
        sweep.wait()
    assert load_quick(tmp_path).trials[1].state == TrialState.RUNNING

    proc = run_train_sweep(tmp_path, *overrides)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = load_quick(tmp_path)
    assert study.trials[1].state == TrialState.FAIL
    finished = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(finished) == 2
    retry = study.trials[2]
    assert retry.system_attrs.get("failed_trial") == 1 and retry.params == study.trials[1].params


def _confirm_progress(out) -> tuple[int, int]:
    """(confirmation trials COMPLETE, confirmation trials created), read from the database read-only."""
    db = out / "optuna" / (QUICK + ".db")
    if not db.exists():
        return 0, 0
    query = (
        "SELECT COUNT(*), SUM(t.state = 'COMPLETE') FROM trials AS t JOIN trial_user_attributes AS a"
        " ON a.trial_id = t.trial_id WHERE a.key = 'confirm_of'"
    )
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
            created, complete = con.execute(query).fetchone()
    except sqlite3.OperationalError:
        return 0, 0
    return complete or 0, created or 0


def _confirm_runs(study: optuna.Study) -> list[tuple[int, int, str]]:
    """(configuration's trial, seed, state) of each confirmation trial."""
    return [
        (t.user_attrs["confirm_of"], t.user_attrs["confirm_seed"], t.state.name)
        for t in study.trials
        if "confirm_of" in t.user_attrs
    ]


@pytest.mark.slow
def test_train_py_sweep_killed_during_confirmation_does_not_rerun_finished_confirmation_runs(tmp_path):
    overrides = [
        "hydra.sweeper.n_trials=2",
        "trainer.num_train_epochs=1",
        "hydra.sweeper.confirm.top_k=1",
        "hydra.sweeper.confirm.seeds=2",
        "hydra.sweeper.heartbeat_interval=1",
        "hydra.sweeper.grace_period=5",
    ]
    command = script_command(
        TRAIN_PY, "-m", "sweep=quick", "experiment=quickstart",
        f"paths.output_dir={tmp_path}", "dataset.max_train_samples=64", "dataset.max_eval_samples=32",
        "hydra.sweeper.plots=false", *overrides,
    )  # fmt: skip
    sweep = subprocess.Popen(
        command, cwd=tmp_path, env=sweep_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 900
        while _confirm_progress(tmp_path)[0] < 1:  # kill it once a confirmation run has finished
            assert sweep.poll() is None, "the sweep ended before it could be killed"
            assert time.time() < deadline
            time.sleep(0.5)
    finally:
        os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait()
    before = _confirm_runs(load_quick(tmp_path))
    finished = [run for run in before if run[2] == "COMPLETE"]
    assert len(finished) == 1 and len(before) <= 2, before

    proc = run_train_sweep(tmp_path, *overrides)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = load_quick(tmp_path)
    after = _confirm_runs(study)
    complete = [run for run in after if run[2] == "COMPLETE"]
    assert sorted(run[1] for run in complete) == [43, 44], after  # each seed once ...
    assert finished[0] in complete and after.count(finished[0]) == 1, after  # ... the finished one not again
    (sweep_dir, *_) = sorted({p.parent for p in tmp_path.glob("multirun/*/*/best.json")}, reverse=True)
    best = json.loads((sweep_dir / "best.json").read_text())
    assert (
        best["confirmed"]["n_seeds"] == 3 and best["n_trials"]["COMPLETE"] + best["n_trials"]["PRUNED"] == 2
    )
    trained_dirs = sorted(p.parent.name for p in tmp_path.glob("multirun/*/*/*confirm*/metrics.json"))
    assert len(trained_dirs) == 2, trained_dirs  # one trained run dir per confirmation seed


def test_wandb_pruned_trial_runs_finish_successfully_with_state_pruned_and_their_ids_in_trials_csv(tmp_path):
    # successive halving with bootstrap_count=1 prunes every trial at its first evaluation.
    proc = run_train_sweep(
        tmp_path,
        "logger=wandb",
        "hydra.sweeper.n_trials=2",
        "trainer.num_train_epochs=2",
        "hydra.sweeper.pruner.name=successive_halving",
        "++hydra.sweeper.pruner.successive_halving={min_resource: 1, bootstrap_count: 1}",
        "hydra.sweeper.confirm.top_k=0",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = load_quick(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 2
    (sweep_dir,) = {p.parent for p in tmp_path.glob("multirun/*/*/trials.csv")}
    ids = {r["number"]: r["wandb_run_id"] for r in csv.DictReader(open(sweep_dir / "trials.csv"))}
    for t in study.trials:
        (run_file,) = (sweep_dir / f"trial-{t.number}").glob("wandb/offline-run-*/run-*.wandb")
        run = wandb_run_view(run_file)
        assert run["id"] == ids[str(t.number)] == t.user_attrs["wandb_run_id"]
        assert run["exit_code"] == 0 and run["summary"]["state"] == "pruned", run["summary"]
        assert run["job_type"] == "trial" and "pruned" in run["tags"] and run["group"] == QUICK
        assert "best/eval_overall_f1" in run["summary"] and run["summary"]["best/epoch"] is not None
    (summary_file,) = sweep_dir.glob("wandb/offline-run-*/run-*.wandb")
    assert wandb_run_view(summary_file)["job_type"] == "sweep-summary"


@pytest.mark.slow
def test_sweep_through_submitit_local_with_confirmation(tmp_path):
    # The submitit code path of hydra/launcher=slurm_gpu, on this machine: each job a submitit process.
    proc = run_train_sweep(
        tmp_path,
        "hydra/launcher=submitit_local",
        "hydra.sweeper.n_trials=3",
        "trainer.num_train_epochs=1",
        "hydra.sweeper.confirm.top_k=2",
        "hydra.sweeper.confirm.seeds=2",
        "hydra.sweeper.pruner.name=none",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = load_quick(tmp_path)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 7  # 3 trials + 2 configurations x 2 seeds
    (sweep_dir,) = {p.parent for p in tmp_path.glob("multirun/*/*/confirm.csv")}
    rows = list(csv.DictReader(open(sweep_dir / "confirm.csv")))
    assert len(rows) == 2 and all(r["n_seeds"] == "3" and r["mean"] and r["std"] for r in rows)
    confirmed = json.loads((sweep_dir / "best.json").read_text())["confirmed"]
    assert confirmed["n_seeds"] == 3 and len(confirmed["run_dirs"]) == 3 and confirmed["verdict"]
    assert all((sweep_dir / d / "metrics.json").is_file() for d in confirmed["run_dirs"])
    assert list((sweep_dir / ".submitit").iterdir()), "the jobs did not go through submitit"
