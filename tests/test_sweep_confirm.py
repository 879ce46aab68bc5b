"""The confirmation stage: the best configurations of a search re-run with more seeds, ranked by mean.

Statistics on hand-made trials; the stage end to end on the stand-in app (tests/sweep_app), whose
objective moves with the seed (``sim.seed_noise``).
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import time

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from ner_experiments.sweeping.confirmation import (
    CONFIRM_OF,
    CONFIRM_SEED,
    confirmation_summary,
    confirmed_configurations,
    pick_configurations,
    plan_confirmation,
)
from tests.sweep_helpers import app_command, load, run_app, states, sweep_dirs, sweep_env

LR = {"lr": FloatDistribution(1e-5, 1.0, log=True)}
CONFIRM = ["hydra.sweeper.confirm.top_k=2", "hydra.sweeper.confirm.seeds=2", "sim.seed_noise=0.05"]


def trial(
    lr: float, value: float | None, state=TrialState.COMPLETE, **user_attrs
) -> optuna.trial.FrozenTrial:
    return create_trial(state=state, value=value, params={"lr": lr}, distributions=LR, user_attrs=user_attrs)


def study_of(*trials: optuna.trial.FrozenTrial) -> list[optuna.trial.FrozenTrial]:
    study = optuna.create_study(direction="maximize")
    study.add_trials(trials)
    return study.get_trials()


def test_distinct_configurations_are_ranked_by_their_best_search_trial():
    trials = study_of(
        trial(0.1, 0.50),
        trial(0.2, 0.70),
        trial(0.1, 0.60),  # the same configuration as trial 0, better: it represents it
        trial(0.3, None, TrialState.PRUNED),
        trial(0.4, 0.99, **{CONFIRM_OF: 1, CONFIRM_SEED: 43}),  # a confirmation run is not a candidate
    )
    assert [t.number for t in pick_configurations(trials, maximize=True, top_k=3)] == [1, 2]
    assert [t.number for t in pick_configurations(trials, maximize=False, top_k=1)] == [0]


def test_mean_over_seeds_reranks_and_the_verdict_names_its_test():
    trials = study_of(
        trial(0.1, 0.80),  # the best single draw ...
        trial(0.2, 0.75),
        trial(0.1, 0.60, **{CONFIRM_OF: 0, CONFIRM_SEED: 43}),
        trial(0.1, 0.62, **{CONFIRM_OF: 0, CONFIRM_SEED: 44}),
        trial(0.2, 0.74, **{CONFIRM_OF: 1, CONFIRM_SEED: 43}),
        trial(0.2, 0.76, **{CONFIRM_OF: 1, CONFIRM_SEED: 44}),
    )
    ranked = confirmed_configurations(trials, maximize=True, top_k=2, base_seed=42)
    assert [c.trial.number for c in ranked] == [1, 0]  # ... is not the best mean
    best = confirmation_summary(ranked, seeds_planned=3)
    assert (
        best["trial"] == 1 and best["n_seeds"] == 3 and best["scores"] == {"42": 0.75, "43": 0.74, "44": 0.76}
    )
    assert best["mean"] == pytest.approx(0.75) and best["std"] == pytest.approx(0.01)
    low, high = best["ci95"]  # mean ± t(0.975, 2) * std / sqrt(3)
    assert high - best["mean"] == pytest.approx(4.3027 * 0.01 / 3**0.5, rel=1e-3) and low < 0.75 < high
    assert "Welch's t-test" in best["test"] and best["runner_up"]["trial"] == 0
    assert best["p_value"] > 0.05 and best["verdict"].startswith("not distinguishable from the runner-up")


def test_verdict_says_when_there_are_too_few_seeds():
    trials = study_of(trial(0.1, 0.8), trial(0.2, 0.7), trial(0.1, 0.81, **{CONFIRM_OF: 0, CONFIRM_SEED: 43}))
    ranked = confirmed_configurations(trials, maximize=True, top_k=2, base_seed=42)
    summary = confirmation_summary(ranked, seeds_planned=3)
    assert summary["n_seeds"] == 2 and summary["p_value"] is None
    assert summary["verdict"].startswith("too few seeds to tell")


def test_plan_skips_finished_runs_reruns_lost_ones_and_gives_up_on_raised_ones():
    lost = {"error": "lost: no heartbeat for over 4 s"}
    trials = study_of(
        trial(0.1, 0.8),
        trial(0.2, 0.7),
        trial(0.1, 0.8, **{CONFIRM_OF: 0, CONFIRM_SEED: 43}),
        trial(0.1, None, TrialState.FAIL, **{CONFIRM_OF: 0, CONFIRM_SEED: 44}, **lost),
        trial(0.2, None, TrialState.FAIL, **{CONFIRM_OF: 1, CONFIRM_SEED: 43}, error="RuntimeError: x"),
        trial(0.2, None, TrialState.RUNNING, **{CONFIRM_OF: 1, CONFIRM_SEED: 44}),
    )
    plan = plan_confirmation(trials, maximize=True, top_k=2, seeds=[43, 44], max_retry=3)
    assert [(r.of.number, r.seed) for r in plan.todo] == [(0, 44)]
    assert [(r.of.number, r.seed) for r in plan.running] == [(1, 44)]
    assert [(r.of.number, r.seed) for r in plan.given_up] == [(1, 43)]
    assert plan_confirmation(trials, True, 2, [43, 44], max_retry=0).todo == []  # no retries left


def trained(out) -> list[tuple[int, str, str]]:
    """(trial number, seed, job type) of each run the stand-in app finished, in order."""
    lines = (out / "trained.log").read_text().splitlines()
    return [(int(ln.split()[0]), ln.split()[-2], ln.split()[-1]) for ln in lines]


def test_confirmation_runs_are_trials_of_the_study_ranked_by_mean(tmp_path):
    proc = run_app(tmp_path, "hydra.sweeper.n_trials=3", "hydra.sweeper.plots=false", *CONFIRM)
    assert proc.returncode == 0, proc.stderr
    study = load(tmp_path)
    assert states(study) == {"COMPLETE": 7}  # 3 search trials + 2 configurations x 2 seeds
    confirms = [t for t in study.trials if CONFIRM_OF in t.user_attrs]
    assert {(t.user_attrs[CONFIRM_OF], t.user_attrs[CONFIRM_SEED]) for t in confirms} == {
        (of, seed) for of in {t.user_attrs[CONFIRM_OF] for t in confirms} for seed in (43, 44)
    }
    assert all(not t.intermediate_values or t.state == TrialState.COMPLETE for t in confirms)
    assert [(seed, job) for _, seed, job in trained(tmp_path)] == [("seed=42", "job=trial")] * 3 + [
        ("seed=43", "job=confirm"),
        ("seed=44", "job=confirm"),
    ] * 2
    (sweep_dir,) = sweep_dirs(tmp_path)
    rows = list(csv.DictReader(open(sweep_dir / "confirm.csv")))
    assert len(rows) == 2 and [r["rank"] for r in rows] == ["1", "2"]
    assert all(r["n_seeds"] == "3" and r["seed_42"] and r["seed_43"] and r["seed_44"] for r in rows)
    assert float(rows[0]["mean"]) >= float(rows[1]["mean"])
    assert float(rows[0]["ci95_low"]) < float(rows[0]["mean"]) < float(rows[0]["ci95_high"])
    best = json.loads((sweep_dir / "best.json").read_text())
    search = [t for t in study.trials if CONFIRM_OF not in t.user_attrs]
    assert best["best_trial"] == max(search, key=lambda t: t.value).number  # the best *search* trial
    assert best["n_trials"]["COMPLETE"] == 3
    confirmed = best["confirmed"]
    assert confirmed["trial"] == int(rows[0]["trial"]) and confirmed["n_seeds"] == 3
    assert confirmed["mean"] == pytest.approx(float(rows[0]["mean"]))
    assert confirmed["verdict"] and "Welch" in confirmed["test"]
    assert [p.name for p in map(lambda d: sweep_dir / d, confirmed["run_dirs"])] == [
        f"trial-{confirmed['trial']}",
        *(
            f"trial-{t.number}-confirm-{confirmed['trial']}-seed{t.user_attrs[CONFIRM_SEED]}"
            for t in confirms
            if t.user_attrs[CONFIRM_OF] == confirmed["trial"]
        ),
    ]
    assert "Confirmation (mean validation.overall_f1 over seeds 42, 43, 44)" in proc.stdout
    assert f"confirmed best: trial {confirmed['trial']}'s configuration" in proc.stdout
    trials_csv = list(csv.DictReader(open(sweep_dir / "trials.csv")))
    assert [r["confirm_of"] != "" for r in trials_csv] == [False] * 3 + [True] * 4


def test_confirmation_off_and_a_rerun_of_a_finished_sweep_runs_nothing(tmp_path):
    proc = run_app(tmp_path, "hydra.sweeper.n_trials=2", "hydra.sweeper.plots=false")
    assert proc.returncode == 0, proc.stderr
    (sweep_dir,) = sweep_dirs(tmp_path)
    assert not (sweep_dir / "confirm.csv").exists() and "confirmed" not in json.loads(
        (sweep_dir / "best.json").read_text()
    )
    proc = run_app(tmp_path, "hydra.sweeper.n_trials=2", "hydra.sweeper.plots=false", *CONFIRM)
    assert proc.returncode == 0, proc.stderr  # a finished search: only its confirmation runs
    assert [n for n, _, _ in trained(tmp_path)] == [0, 1, 2, 3, 4, 5]
    proc = run_app(tmp_path, "hydra.sweeper.n_trials=2", "hydra.sweeper.plots=false", *CONFIRM)
    assert proc.returncode == 0, proc.stderr
    assert len(trained(tmp_path)) == 6 and len(load(tmp_path).trials) == 6


def test_sweep_killed_during_confirmation_resumes_without_rerunning_finished_runs(tmp_path):
    overrides = ["hydra.sweeper.n_trials=2", "hydra.sweeper.plots=false", "sim.epoch_seconds=0.05", *CONFIRM]
    first = subprocess.Popen(
        app_command(tmp_path, *overrides, "sim.hang_trial=3"),  # trial 2 is the first confirmation run
        cwd=tmp_path, env=sweep_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.time() + 60
        while not (tmp_path / "hanging_3").exists():
            assert time.time() < deadline, "the second confirmation run never started"
            assert first.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.2)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    before = load(tmp_path)
    assert CONFIRM_OF in before.trials[2].user_attrs and before.trials[2].state == TrialState.COMPLETE
    assert before.trials[3].state == TrialState.RUNNING

    proc = run_app(tmp_path, *overrides)  # the same command again
    assert proc.returncode == 0, proc.stderr
    study = load(tmp_path)
    runs = [n for n, _, _ in trained(tmp_path)]
    assert runs.count(2) == 1 and 3 not in runs  # trial 2 was not run again; the dead one was replaced
    assert study.trials[3].state == TrialState.FAIL
    assert study.trials[3].user_attrs["error"].startswith("lost: no heartbeat for over 4 s")
    lost = study.trials[3].user_attrs
    redo = [t for t in study.trials[4:] if t.user_attrs.get(CONFIRM_OF) == lost[CONFIRM_OF]]
    assert [t.user_attrs[CONFIRM_SEED] for t in redo] == [lost[CONFIRM_SEED]]
    assert states(study) == {"COMPLETE": 6, "FAIL": 1}  # no WAITING copy of the lost confirmation run
    sweep_dir = sweep_dirs(tmp_path)[-1]  # the rerun's
    assert all(r["n_seeds"] == "3" for r in csv.DictReader(open(sweep_dir / "confirm.csv")))
    errors = {r["number"]: r["error"] for r in csv.DictReader(open(sweep_dir / "trials.csv"))}
    assert "lost: no heartbeat" in errors["3"] and " UTC" in errors["3"]
