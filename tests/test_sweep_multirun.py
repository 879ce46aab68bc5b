"""Sweeps as Hydra multiruns, end to end, on the stand-in app (tests/sweep_app): fast, no model.

The app reports its objective to the trial exactly as training's callback does (TrialReporter).
"""

from __future__ import annotations

import csv
import json
import re
import shlex
import signal
import subprocess
import time

import optuna
import pytest
from optuna.trial import TrialState

from tests.helpers import REPO_ROOT
from tests.sweep_helpers import app_command, load, run_app, run_two_workers, states, sweep_dirs, sweep_env


def test_multirun_completes_and_best_json_matches_storage(tmp_path):
    proc = run_app(tmp_path, "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.seed=7")
    assert proc.returncode == 0, proc.stderr
    study = load(tmp_path)
    assert states(study) == {"COMPLETE": 3}
    (sweep_dir,) = sweep_dirs(tmp_path)
    best = json.loads((sweep_dir / "best.json").read_text())
    assert best["best_trial"] == study.best_trial.number
    assert best["best_value"] == pytest.approx(study.best_value)
    assert best["best_params"] == study.best_trial.params
    assert best["best_user_attrs"]["output_dir"].startswith(str(sweep_dir))  # where the best model is
    rows = list(csv.DictReader(open(sweep_dir / "trials.csv")))
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3
    assert {"number", "value", "duration_s", "trainer.learning_rate", "trainer.num_train_epochs"} <= set(
        rows[0]
    )
    for plot in ("optimization_history", "objective_vs_learning_rate", "objective_vs_num_train_epochs"):
        assert (sweep_dir / f"{plot}.png").stat().st_size > 1000, plot
    # Importances from 3 trials would be noise: skipped, and the log says why.
    assert not (sweep_dir / "param_importances.png").exists()
    assert "plot param_importances skipped: 3 COMPLETE trials, it needs 10" in proc.stdout + proc.stderr
    assert sorted(p.name for p in sweep_dir.glob("trial-*")) == ["trial-0", "trial-1", "trial-2"]
    assert f"best trial {study.best_trial.number}" in proc.stdout
    # Each trial got the study's coordinates and its W&B grouping/naming overrides.
    lines = (tmp_path / "trained.log").read_text().splitlines()
    assert [ln.split()[0] for ln in lines] == ["0", "1", "2"]
    assert "trial-0_learning_rate=" in lines[0] and "'sweep', 'app', 'trial-0'" in lines[0]


def test_rerun_resumes_instead_of_starting_again(tmp_path):
    assert run_app(tmp_path, "hydra.sweeper.n_trials=2").returncode == 0
    proc = run_app(tmp_path, "hydra.sweeper.n_trials=3")
    assert proc.returncode == 0, proc.stderr
    assert states(load(tmp_path)) == {"COMPLETE": 3}  # one more, not three more
    proc = run_app(tmp_path, "hydra.sweeper.n_trials=3", "hydra.sweeper.plots=false")
    assert proc.returncode == 0, proc.stderr
    assert len(load(tmp_path).trials) == 3  # nothing missing: nothing run


def test_pruned_trials_stop_early_and_are_stored_pruned(tmp_path):
    # Trial 0 is best at every evaluation; a median pruner that starts after 1 trial must prune the rest.
    proc = run_app(
        tmp_path,
        "sim.mode=first_best",
        "trainer.num_train_epochs=4",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.pruner.name=median",
        "++hydra.sweeper.pruner.median={n_startup_trials: 1, n_warmup_steps: 0}",
    )
    assert proc.returncode == 0, proc.stderr
    study = load(tmp_path)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert len(complete) == 1 and len(pruned) == 2
    assert complete[0].user_attrs["steps_trained"] == 40
    for t in pruned:
        assert t.user_attrs["steps_trained"] < complete[0].user_attrs["steps_trained"]
        assert t.user_attrs["pruned_at_step"] == 100  # hundredths of an epoch: after epoch 1
        assert list(t.intermediate_values) == [100]


def test_preset_pruner_is_switched_off_on_the_command_line(tmp_path):
    # The documented command: the preset's median options stay in the config, unused.
    proc = run_app(
        tmp_path,
        "sweep=lr_epochs",
        "hydra.sweeper.pruner.name=none",
        "sim.mode=first_best",
        "hydra.sweeper.confirm.top_k=0",  # the search only
    )
    assert proc.returncode == 0, proc.stderr
    study = load(tmp_path, "lr_epochs-stand_in-sim")
    assert study.user_attrs["pruner"]["name"] == "none"
    assert states(study) == {"COMPLETE": 20}  # first_best: the preset's median pruner would prune most


def test_preset_pruner_is_swapped_for_another_on_the_command_line(tmp_path):
    overrides = [
        "sweep=lr_epochs",
        "sim.mode=first_best",
        "trainer.num_train_epochs=4",  # one schedule for all: the same-or-longer filter keeps every trial
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.plots=false",
        "hydra.sweeper.confirm.top_k=0",
    ]
    proc = run_app(tmp_path / "preset", *overrides)
    assert proc.returncode == 0, proc.stderr
    # The preset's successive halving: after 1 epoch only a trial as good as the best one goes on.
    study = load(tmp_path / "preset", "lr_epochs-stand_in-sim")
    assert states(study) == {"COMPLETE": 1, "PRUNED": 3}
    assert [t.user_attrs.get("pruned_at_step") for t in study.trials] == [None, 100, 100, 100]
    proc = run_app(
        tmp_path / "swapped",
        *overrides,
        "hydra.sweeper.pruner.name=median",
        "++hydra.sweeper.pruner.median.n_startup_trials=2",
    )
    assert proc.returncode == 0, proc.stderr
    study = load(tmp_path / "swapped", "lr_epochs-stand_in-sim")
    assert study.user_attrs["pruner"]["name"] == "median"
    assert states(study) == {"COMPLETE": 2, "PRUNED": 2}  # the median prunes from the third trial on


def test_trial_that_raises_is_failed_with_its_error_and_the_sweep_goes_on(tmp_path):
    proc = run_app(tmp_path, "hydra.sweeper.n_trials=2", "sim.fail_trial=1")
    assert proc.returncode == 0, proc.stderr
    study = load(tmp_path)
    assert states(study) == {"COMPLETE": 2, "FAIL": 1}
    failed = study.trials[1]
    assert failed.state == TrialState.FAIL
    assert "RuntimeError: simulated failure in trial 1" in failed.user_attrs["error"]


def test_killed_sweep_is_resumed_and_the_dead_trial_retried(tmp_path):
    out = tmp_path
    out.mkdir(exist_ok=True)
    overrides = ["hydra.sweeper.n_trials=3", "sim.epoch_seconds=0.05"]
    first = subprocess.Popen(
        app_command(out, *overrides, "sim.hang_trial=1"),
        cwd=out,
        env=sweep_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while not (out / "hanging_1").exists():
            assert time.time() < deadline, "trial 1 never started"
            assert first.poll() is None, "the sweep ended before trial 1 hung"
            time.sleep(0.2)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    study = load(out)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.RUNNING]

    proc = run_app(out, *overrides)  # the same command again
    assert proc.returncode == 0, proc.stderr
    study = load(out)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 3
    assert study.trials[1].state == TrialState.FAIL  # detected by its stale heartbeat
    assert study.trials[1].user_attrs["error"].startswith("lost: no heartbeat for over 4 s")  # and when:
    assert study.trials[1].user_attrs["error"].endswith(" UTC")
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == 1]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == study.trials[1].params
    trained = [ln.split()[0] for ln in (out / "trained.log").read_text().splitlines()]
    assert len(trained) == len(set(trained)) == 3  # trial 0 was not run again


def test_two_workers_share_one_study_on_sqlite(tmp_path):
    overrides = ["hydra.sweeper.n_trials=6", "sim.epoch_seconds=0.2", "hydra.sweeper.plots=false"]
    tmp_path.mkdir(exist_ok=True)
    run_two_workers(tmp_path, *overrides)
    assert_all_trials_accounted_for(load(tmp_path), tmp_path, n_trials=6)


def assert_all_trials_accounted_for(study: optuna.Study, out, n_trials: int) -> None:
    """Exactly ``n_trials`` finished, none running or failed, each trained once, by either worker."""
    by_state = states(study)
    assert by_state.get("COMPLETE", 0) + by_state.get("PRUNED", 0) == n_trials, by_state
    assert set(by_state) <= {"COMPLETE", "PRUNED", "WAITING"}, by_state  # WAITING: a slot another worker took
    trained = [int(ln.split()[0]) for ln in (out / "trained.log").read_text().splitlines()]
    finished = sorted(t.number for t in study.trials if t.state == TrialState.COMPLETE)
    assert sorted(trained) == finished


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["++hydra.sweeper.params.trainer.learning_rate='foo(1, 2)'"],
            "uses an unknown function: use choice(",
        ),
        (["++hydra.sweeper.params.trainer.learning_rate='choice()'"], "choice() is empty"),
        (["trainer.learning_rate=interval(0.1, 0.01)"], "interval has low 0.1 > high 0.01"),
        (["hydra.sweeper.sampler.name=anneal"], "hydra.sweeper.sampler.name='anneal' is not valid"),
        (["hydra.sweeper.pruner.name=patient"], "hydra.sweeper.pruner.name='patient' is not valid"),
        (
            ["hydra.sweeper.pruner.name=median", "++hydra.sweeper.pruner.median.n_warmup=1"],
            "hydra.sweeper.pruner.median.n_warmup is not an option of the median pruner: use one of",
        ),
        (
            [
                "sweep=lr_epochs",
                "hydra.sweeper.pruner.name=successive_halving",
                "++hydra.sweeper.pruner.successive_halving.reduction_factor=1",
            ],
            "hydra.sweeper.pruner.successive_halving with options {'min_resource': 100, 'reduction_factor': 1} "
            "is invalid",
        ),
        (
            ["trainer.no_such_key=range(1, 3)"],
            "do not fit the config: Could not override 'trainer.no_such_key'",
        ),
        (
            ["hydra.sweeper.storage='postgresql+psycopg://u:secret@127.0.0.1:1/optuna'"],
            "cannot open the Optuna storage postgresql+psycopg://u:***@127.0.0.1:1/optuna",
        ),
    ],
)
def test_bad_input_is_one_error_line_and_nothing_written(tmp_path, overrides, message):
    proc = run_app(tmp_path, *overrides)
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "multirun").exists()
    assert not (tmp_path / "optuna").exists()


def test_study_name_reused_with_other_direction_or_space_is_refused(tmp_path):
    assert run_app(tmp_path, "hydra.sweeper.n_trials=1", "hydra.sweeper.plots=false").returncode == 0
    proc = run_app(tmp_path, "hydra.sweeper.direction=minimize")
    assert proc.returncode == 2
    assert "error: study 'app' exists in sqlite" in proc.stderr
    assert (
        "with direction=maximize, not minimize: pick a new name with hydra.sweeper.study_name=" in proc.stderr
    )
    proc = run_app(tmp_path, "trainer.num_train_epochs=range(1, 9)")
    assert proc.returncode == 2
    assert "different search space (changed: trainer.num_train_epochs)" in proc.stderr
    proc = run_app(
        tmp_path,
        "trainer.num_train_epochs=range(1, 9)",
        "hydra.sweeper.study_name=app-v2",
        "hydra.sweeper.n_trials=1",
    )
    assert proc.returncode == 0, proc.stderr


def test_parallel_trials_get_one_gpu_each_and_wandb_gets_a_summary_run(tmp_path):
    env = sweep_env()
    env["CUDA_VISIBLE_DEVICES"] = "0,1"  # two "GPUs" to hand out; nothing here initialises CUDA
    tmp_path.mkdir(exist_ok=True)
    proc = subprocess.run(
        app_command(
            tmp_path,
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.plots=false",
            "logger.backend=wandb",
        ),
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert states(load(tmp_path)) == {"COMPLETE": 2}
    lines = sorted((tmp_path / "trained.log").read_text().splitlines())
    assert [ln.split()[2] for ln in lines] == ["gpu=0", "gpu=1"]
    assert len({ln.split()[3] for ln in lines}) == 2  # two processes
    (sweep_dir,) = sweep_dirs(tmp_path)
    (run_file,) = sweep_dir.glob("wandb/offline-run-*/*.wandb")
    data = run_file.read_bytes()
    assert b"app-summary" in data and b"best_value" in data and b"best_params/trainer.learning_rate" in data


def test_grid_sampler_visits_each_point_once_and_lowers_n_trials(tmp_path):
    proc = run_app(
        tmp_path,
        "hydra.sweeper.sampler.name=grid",
        "trainer.learning_rate=choice(0.001, 0.01)",
        "trainer.num_train_epochs=range(2, 3)",
        "hydra.sweeper.n_trials=10",
        "hydra.sweeper.plots=false",
    )
    assert proc.returncode == 0, proc.stderr
    study = load(tmp_path)
    assert states(study) == {"COMPLETE": 4}
    points = {(t.params["trainer.learning_rate"], t.params["trainer.num_train_epochs"]) for t in study.trials}
    assert points == {(0.001, 2), (0.001, 3), (0.01, 2), (0.01, 3)}


def test_sweep_stops_with_a_clear_error_after_max_failures(tmp_path):
    proc = run_app(tmp_path, "sim.fail_trial=0", "hydra.sweeper.max_failures=1", "hydra.sweeper.plots=false")
    assert proc.returncode == 2
    assert "error: the sweep stopped after 1 failed trials (hydra.sweeper.max_failures=1)" in proc.stderr
    assert "simulated failure in trial 0" in proc.stderr
    assert states(load(tmp_path)) == {"FAIL": 1}


def test_documented_quoting_of_a_preset_parameter_works_in_a_shell(tmp_path):
    # The override exactly as docs/sweeps.md prints it, through a real shell.
    doc = (REPO_ROOT / "docs" / "sweeps.md").read_text()
    documented = re.search(
        r"""python train\.py -m sweep=lr_epochs ("\+\+hydra\.sweeper\.params\.[^"]+")""", doc
    )
    assert documented, "docs/sweeps.md no longer shows how to change one preset parameter"
    command = " ".join(
        shlex.quote(a) for a in app_command(tmp_path, "sweep=lr_epochs", "hydra.sweeper.n_trials=1")
    )
    proc = subprocess.run(
        f"{command} hydra.sweeper.plots=false hydra.sweeper.confirm.top_k=0 {documented.group(1)}",
        shell=True, cwd=tmp_path, env=sweep_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    epochs = load(tmp_path, "lr_epochs-stand_in-sim").trials[0].distributions["trainer.num_train_epochs"]
    assert (epochs.low, epochs.high) == (2, 5)
