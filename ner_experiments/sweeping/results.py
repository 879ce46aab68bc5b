"""What a sweep leaves behind: trials.csv, best.json and plots in the sweep directory, the printed
table, and (with W&B) a summary run in the study's group."""

from __future__ import annotations

import csv
import functools
import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ner_experiments.redaction import redact
from ner_experiments.sweeping.confirmation import (
    CONFIRM_OF,
    CONFIRM_SEED,
    best_search_trial,
    confirm_rows,
    confirmation_summary,
    confirmed_configurations,
    search_trials,
)
from ner_experiments.sweeping.search_space import format_param, short_name
from ner_experiments.tracking import resolve_wandb_mode

log = logging.getLogger(__name__)

# fANOVA fits a random forest to the finished trials: with fewer, its importances are mostly noise.
MIN_TRIALS_FOR_IMPORTANCES = 10


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per trial: number, state, objective, duration, steps trained, params, the configuration a
    confirmation run confirms and its seed, retried trial, W&B run id and URL, error."""
    trials = study.get_trials(deepcopy=False)
    param_names = sorted({name for t in trials for name in t.params})
    return [
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "duration_s": round(t.duration.total_seconds(), 1) if t.duration else None,
            "steps_trained": t.user_attrs.get("steps_trained"),
            **{name: t.params.get(name) for name in param_names},
            "confirm_of": t.user_attrs.get(CONFIRM_OF),
            "seed": t.user_attrs.get(CONFIRM_SEED),
            "retry_of": t.system_attrs.get("failed_trial"),
            "wandb_run_id": t.user_attrs.get("wandb_run_id"),
            "wandb_url": t.user_attrs.get("wandb_url"),
            "error": t.user_attrs.get("error"),
        }
        for t in trials
    ]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table, without the error and URL columns and empty columns (for the log)."""
    hidden = ("error", "wandb_url")
    columns = [c for c in rows[0] if c not in hidden and any(r[c] is not None for r in rows)] if rows else []
    cells = [[short_name(c) for c in columns]] + [[_cell(r[c]) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    rows = redact(rows)  # a password in a URL-like value never reaches a shared file
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)


def write_results(
    study: optuna.Study,
    out: Path,
    plots: bool,
    objective: str = "objective",
    confirm_top_k: int = 0,
    confirm_seeds: list[int] | None = None,
    base_seed: int = 0,
) -> dict[str, Any]:
    """Write ``trials.csv``, ``best.json``, ``confirm.csv`` (with ``confirm_top_k``) and plots to ``out``,
    print the tables; return the summary (``best.json``).

    ``best_*`` keys describe the best *search* trial; ``confirmed`` the configuration with the best
    mean over seeds (search trial as seed ``base_seed``, its confirmation runs as ``confirm_seeds``).
    """
    out.mkdir(parents=True, exist_ok=True)
    rows = trial_rows(study)
    _write_csv(out / "trials.csv", rows)
    trials = study.get_trials(deepcopy=False)
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    best = best_search_trial(trials, maximize)
    search = search_trials(trials)
    summary: dict[str, Any] = {
        "study_name": study.study_name,
        "direction": study.direction.name.lower(),
        "objective": objective,
        "best_trial": best.number if best else None,
        "best_value": best.value if best else None,
        "best_params": best.params if best else None,
        "best_user_attrs": best.user_attrs if best else None,  # output_dir: its run dir, with the model
        "n_trials": {s.name: sum(t.state == s for t in search) for s in TrialState},
    }
    confirm_text = ""
    if confirm_top_k:
        seeds = [base_seed, *(confirm_seeds or [])]
        confirmation, confirm_text = _write_confirmation(
            trials, search, maximize, out, objective, confirm_top_k, seeds
        )
        summary.update(confirmation)
    (out / "best.json").write_text(json.dumps(redact(summary), indent=2) + "\n")
    if plots and best:
        write_plots(study, out, objective)
    best_line = "no trial COMPLETE yet"
    if best:
        params = ", ".join(f"{k}={format_param(v)}" for k, v in best.params.items())
        best_line = f"best trial {best.number}: value {best.value:.6g}, params {params}"
    files = "trials.csv, best.json" + (", confirm.csv" if confirm_top_k else "")
    print(
        f"\nStudy {study.study_name!r}:\n{format_table(rows)}\n{best_line}{confirm_text}\nResults: {out}/{files}"
    )
    return summary


def _write_confirmation(
    trials: list[FrozenTrial],
    search: list[FrozenTrial],
    maximize: bool,
    out: Path,
    objective: str,
    top_k: int,
    seeds: list[int],
) -> tuple[dict[str, Any], str]:
    """Write ``confirm.csv``; return best.json's ``confirmed`` and ``n_confirm_runs`` and the printed table."""
    ranked = confirmed_configurations(trials, maximize, top_k, seeds[0])
    confirm = confirm_rows(ranked, seeds)
    _write_csv(out / "confirm.csv", confirm)
    confirmed = confirmation_summary(ranked, len(seeds))
    keys = {
        "confirmed": confirmed,
        "n_confirm_runs": {s.name: sum(t.state == s for t in trials if t not in search) for s in TrialState},
    }
    if not confirm:
        return keys, ""
    text = (
        f"\nConfirmation (mean {objective} over seeds {', '.join(map(str, seeds))}):\n"
        f"{format_table(confirm)}\nconfirmed best: trial {confirmed['trial']}'s configuration, "
        f"mean {confirmed['mean']:.4g} ± {confirmed['std'] or 0:.2g} (std, {confirmed['n_seeds']} seeds): "
        f"{confirmed['verdict']}"
    )
    return keys, text


def search_study(study: optuna.Study, objective: str) -> optuna.Study:
    """An in-memory copy of ``study`` with its search trials only, its metric named ``objective`` (for plots)."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in memory"
    try:
        copy = optuna.create_study(direction=study.direction)
    finally:
        optuna.logging.set_verbosity(verbosity)
    copy.add_trials(search_trials(study.get_trials(deepcopy=False)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        copy.set_metric_names([objective])
    return copy


def write_plots(study: optuna.Study, out: Path, objective: str = "objective") -> None:
    """Optimization history, parameter importances, objective vs each parameter and intermediate values,
    of the search trials, with ``objective`` on the axis.

    A plot that needs more finished trials than the study has is skipped with a log line; parameter
    importances need :data:`MIN_TRIALS_FOR_IMPORTANCES` COMPLETE trials.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    study = search_study(study, objective)
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    plots: dict[str, Callable[[], Any]] = {
        "optimization_history": lambda: ovm.plot_optimization_history(study, target_name=objective),
        "param_importances": lambda: ovm.plot_param_importances(study, target_name=objective),
        **{
            f"objective_vs_{short_name(name)}": functools.partial(
                ovm.plot_slice, study, params=[name], target_name=objective
            )
            for name in sorted(study.best_trial.params)
        },
        "intermediate_values": lambda: ovm.plot_intermediate_values(study),
    }
    if complete < MIN_TRIALS_FOR_IMPORTANCES:
        del plots["param_importances"]
        log.info(
            "plot param_importances skipped: %d COMPLETE trials, it needs %d for importances that are not noise",
            complete,
            MIN_TRIALS_FOR_IMPORTANCES,
        )
    for name, plot in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fig = plot().figure
            fig.tight_layout()
            fig.savefig(out / f"{name}.png", dpi=100)
        except Exception as e:  # too few trials, a constant parameter, ...
            log.info("plot %s skipped: %s", name, e)
        plt.close("all")


def log_sweep_summary(study: optuna.Study, logger: Any, sweep_dir: Path, summary: dict[str, Any]) -> None:
    """Create the ``<study>-summary`` W&B run (group: the study name) with the best trial and all trials."""
    try:
        import wandb

        run = wandb.init(
            project=logger.get("project"),
            entity=logger.get("entity"),
            group=study.study_name,
            name=f"{study.study_name}-summary",
            job_type="sweep-summary",
            tags=["sweep", "sweep-summary", study.study_name],
            mode=resolve_wandb_mode(logger.get("mode")),
            dir=str(sweep_dir),
            config={"study_name": study.study_name, "direction": summary["direction"]},
            reinit="create_new",
        )
        rows = trial_rows(study)
        columns: list[str | int] = [*rows[0]] if rows else []
        run.log({"trials": wandb.Table(columns=columns, data=[list(r.values()) for r in rows])})
        run.summary["best_trial"] = summary["best_trial"]
        run.summary["best_value"] = summary["best_value"]
        for key, value in (summary["best_params"] or {}).items():
            run.summary[f"best_params/{key}"] = value
        for state, count in summary["n_trials"].items():
            run.summary[f"n_trials/{state}"] = count
        confirm_csv = sweep_dir / "confirm.csv"
        if summary.get("confirmed") and confirm_csv.is_file():  # the same ranking as confirm.csv
            with open(confirm_csv, newline="") as f:
                table = list(csv.reader(f))
            run.log({"confirm": wandb.Table(columns=table[0], data=table[1:])})
            for key in ("trial", "mean", "std", "n_seeds", "p_value", "verdict"):
                run.summary[f"confirmed/{key}"] = summary["confirmed"][key]
            for key, value in summary["confirmed"]["params"].items():
                run.summary[f"confirmed/params/{key}"] = value
        run.finish()
    except Exception as e:  # tracking must never lose the sweep's results, which are on disk already
        log.warning("could not write the W&B sweep summary run: %s", e)
