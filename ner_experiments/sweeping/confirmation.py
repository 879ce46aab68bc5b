"""The confirmation stage: the best configurations of a search re-run with more seeds, ranked by mean.

A search trial is one seed, and the seed alone moves NER F1 by about a point (Reimers & Gurevych,
EMNLP 2017), as much as the differences a search ranks. So after the search the sweeper re-runs the
``top_k`` best distinct configurations with ``seeds`` further seeds each, as trials of the same study
marked with the user attributes ``confirm_of`` (the search trial whose configuration they repeat)
and ``confirm_seed``. This module holds what does not launch anything: which runs a study still
needs, and the statistics over the finished ones.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from optuna.trial import FrozenTrial, TrialState

CONFIRM_OF = "confirm_of"  # user attribute: number of the search trial whose configuration is confirmed
CONFIRM_SEED = "confirm_seed"  # user attribute: the seed of the confirmation run
ALPHA = 0.05  # significance level of the verdict's Welch's t-test
MIN_SEEDS_FOR_TEST = 3  # fewer scores per configuration than this: the verdict says it cannot tell


def is_confirmation(trial: FrozenTrial) -> bool:
    return CONFIRM_OF in trial.user_attrs


def search_trials(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials of the search itself (what ``n_trials`` counts and ``best_trial`` is chosen from)."""
    return [t for t in trials if not is_confirmation(t)]


def best_search_trial(trials: Sequence[FrozenTrial], maximize: bool) -> FrozenTrial | None:
    """The COMPLETE search trial with the best value (the lowest number among equals)."""
    complete = [t for t in search_trials(trials) if t.state == TrialState.COMPLETE and t.value is not None]
    if not complete:
        return None
    return min(complete, key=lambda t: (-t.value if maximize else t.value, t.number))  # type: ignore[operator]


def _config_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def pick_configurations(trials: Sequence[FrozenTrial], maximize: bool, top_k: int) -> list[FrozenTrial]:
    """The ``top_k`` distinct configurations by their best COMPLETE search trial, best first.

    Each is represented by that trial (its number names the configuration in every output).
    """
    best: dict[str, FrozenTrial] = {}
    for t in sorted(search_trials(trials), key=lambda t: t.number):
        if t.state != TrialState.COMPLETE or t.value is None:
            continue
        key = _config_key(t.params)
        kept = best.get(key)
        if kept is None or (t.value > kept.value if maximize else t.value < kept.value):  # type: ignore[operator]
            best[key] = t
    ranked = sorted(best.values(), key=lambda t: (-t.value if maximize else t.value, t.number))  # type: ignore[operator]
    return ranked[:top_k]


@dataclass(frozen=True)
class ConfirmRun:
    """One confirmation run a study needs: configuration of search trial ``of``, seed ``seed``."""

    of: FrozenTrial
    seed: int


def runs_of(trials: Sequence[FrozenTrial], of: int, seed: int) -> list[FrozenTrial]:
    """The confirmation trials of search trial ``of`` with ``seed``, in order."""
    return [
        t for t in trials if t.user_attrs.get(CONFIRM_OF) == of and t.user_attrs.get(CONFIRM_SEED) == seed
    ]


LOST, NOT_RUN = "lost", "not run"  # how the ``error`` of a trial that died, or lost a race, starts


def lost(trial: FrozenTrial) -> bool:
    """A FAIL trial whose process died (failed for a missed heartbeat), as opposed to one that raised."""
    return trial.state == TrialState.FAIL and str(trial.user_attrs.get("error", "")).startswith(LOST)


def raised(trial: FrozenTrial) -> bool:
    """A FAIL trial that ran and raised (not lost, and not one left unrun because another worker took its run)."""
    error = str(trial.user_attrs.get("error", ""))
    return trial.state == TrialState.FAIL and not error.startswith((LOST, NOT_RUN))


@dataclass
class ConfirmPlan:
    """Which confirmation runs are done, running elsewhere, still to launch, or given up."""

    configurations: list[FrozenTrial]
    seeds: list[int]
    todo: list[ConfirmRun] = field(default_factory=list)
    running: list[ConfirmRun] = field(default_factory=list)
    given_up: list[ConfirmRun] = field(default_factory=list)


def plan_confirmation(
    trials: Sequence[FrozenTrial], maximize: bool, top_k: int, seeds: list[int], max_retry: int | None
) -> ConfirmPlan:
    """What the confirmation stage of a study has left to do.

    A run with a COMPLETE trial is done (a rerun of the sweep never repeats it). One that raised is
    given up, as a failed search trial is; one that was lost (a dead process) is run again, up to
    ``max_retry`` times.
    """
    plan = ConfirmPlan(pick_configurations(trials, maximize, top_k), seeds)
    for of in plan.configurations:
        for seed in seeds:
            run, attempts = ConfirmRun(of, seed), runs_of(trials, of.number, seed)
            states = {t.state for t in attempts}
            if TrialState.COMPLETE in states:
                continue
            if TrialState.RUNNING in states:
                plan.running.append(run)
            elif any(raised(t) or t.state == TrialState.PRUNED for t in attempts) or (
                max_retry is not None and sum(lost(t) for t in attempts) > max_retry
            ):
                plan.given_up.append(run)
            else:
                plan.todo.append(run)
    return plan


def _t_interval(scores: list[float]) -> tuple[float, float] | None:
    """The t-based 95% confidence interval of the mean of ``scores`` (None with fewer than 2)."""
    if len(scores) < 2:
        return None
    from scipy import stats

    mean, sem = statistics.fmean(scores), statistics.stdev(scores) / math.sqrt(len(scores))
    half = float(stats.t.ppf(0.975, len(scores) - 1)) * sem
    return mean - half, mean + half


@dataclass
class ConfirmedConfiguration:
    """A confirmed configuration: its search trial's scores and its confirmation runs' scores, by seed."""

    trial: FrozenTrial  # the search trial
    scores: dict[int, float]  # seed -> objective
    run_dirs: list[str]

    @property
    def n_seeds(self) -> int:
        return len(self.scores)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores.values())

    @property
    def std(self) -> float | None:
        """Sample standard deviation over seeds (None with one seed)."""
        return statistics.stdev(self.scores.values()) if self.n_seeds >= 2 else None

    @property
    def ci95(self) -> tuple[float, float] | None:
        return _t_interval(list(self.scores.values()))


def confirmed_configurations(
    trials: Sequence[FrozenTrial], maximize: bool, top_k: int, base_seed: int
) -> list[ConfirmedConfiguration]:
    """The confirmed configurations ranked by mean score over seeds (best first).

    The search trial counts as the seed ``base_seed``; each confirmation seed counts once (its
    first COMPLETE run).
    """
    found = []
    for of in pick_configurations(trials, maximize, top_k):
        scores: dict[int, float] = {base_seed: float(of.value)}  # type: ignore[arg-type]
        dirs = [str(of.user_attrs.get("output_dir", ""))]
        for t in sorted(trials, key=lambda t: t.number):
            seed = t.user_attrs.get(CONFIRM_SEED)
            if (
                t.user_attrs.get(CONFIRM_OF) == of.number
                and t.state == TrialState.COMPLETE
                and seed not in scores
            ):
                scores[int(seed)] = float(t.value)  # type: ignore[arg-type]
                dirs.append(str(t.user_attrs.get("output_dir", "")))
        found.append(ConfirmedConfiguration(of, scores, dirs))
    return sorted(found, key=lambda c: (-c.mean if maximize else c.mean, c.trial.number))


def welch_p_value(a: list[float], b: list[float]) -> float:
    """Two-sided Welch's t-test (unequal variances) p-value of the means of ``a`` and ``b`` differing.

    Two-sided although ``a`` was picked for its better mean: the more conservative choice.
    """
    from scipy import stats

    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def verdict(ranked: list[ConfirmedConfiguration]) -> tuple[str, float | None]:
    """One line: does the best configuration beat the runner-up beyond seed noise? And the p-value."""
    if len(ranked) < 2:
        return "only one configuration was confirmed: nothing to compare it with", None
    best, runner_up = ranked[0], ranked[1]
    a, b = list(best.scores.values()), list(runner_up.scores.values())
    versus = f"trial {best.trial.number} vs runner-up trial {runner_up.trial.number}"
    if min(len(a), len(b)) < MIN_SEEDS_FOR_TEST:
        return (
            f"too few seeds to tell ({versus}: {len(a)} and {len(b)} scores; Welch's t-test needs at least "
            f"{MIN_SEEDS_FOR_TEST} each: raise hydra.sweeper.confirm.seeds)",
            None,
        )
    p = welch_p_value(a, b)
    if math.isnan(p):  # identical scores on both sides
        return f"not distinguishable ({versus}): their scores do not vary over seeds", None
    tested = f"Welch's t-test on {len(a)} and {len(b)} seeds, p={p:.3g}"
    if p < ALPHA:
        return f"beats the runner-up beyond seed noise ({versus}: {tested} < {ALPHA})", p
    return f"not distinguishable from the runner-up at seed noise ({versus}: {tested} >= {ALPHA})", p


def confirmation_summary(ranked: list[ConfirmedConfiguration], seeds_planned: int) -> dict[str, Any] | None:
    """``best.json["confirmed"]``: the configuration with the best mean, its statistics and the verdict."""
    if not ranked:
        return None
    best = ranked[0]
    line, p = verdict(ranked)
    ci = best.ci95
    summary: dict[str, Any] = {
        "trial": best.trial.number,
        "params": best.trial.params,
        "mean": best.mean,
        "std": best.std,
        "n_seeds": best.n_seeds,
        "n_seeds_planned": seeds_planned,
        "scores": {str(s): v for s, v in best.scores.items()},
        "ci95": list(ci) if ci else None,
        "run_dirs": best.run_dirs,
        "test": f"Welch's t-test (two-sided, unequal variances), alpha {ALPHA}",
        "p_value": p,
        "verdict": line,
    }
    if len(ranked) > 1:
        r = ranked[1]
        summary["runner_up"] = {
            "trial": r.trial.number,
            "params": r.trial.params,
            "mean": r.mean,
            "std": r.std,
            "n_seeds": r.n_seeds,
        }
    return summary


def confirm_rows(ranked: list[ConfirmedConfiguration], seeds: list[int]) -> list[dict[str, Any]]:
    """``confirm.csv``: one row per configuration, ranked by mean."""
    names = sorted({name for c in ranked for name in c.trial.params})
    rows = []
    for rank, c in enumerate(ranked, start=1):
        ci = c.ci95
        rows.append(
            {
                "rank": rank,
                "trial": c.trial.number,
                **{name: c.trial.params.get(name) for name in names},
                "n_seeds": c.n_seeds,
                **{f"seed_{s}": c.scores.get(s) for s in seeds},
                "mean": c.mean,
                "std": c.std,
                "ci95_low": ci[0] if ci else None,
                "ci95_high": ci[1] if ci else None,
            }
        )
    return rows
