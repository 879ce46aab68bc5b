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
from optuna.trial import TrialState

from ner_experiments.redaction import redact
from ner_experiments.sweeping.search_space import format_param, short_name
from ner_experiments.tracking import resolve_wandb_mode

log = logging.getLogger(__name__)


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per trial: number, state, objective, duration, steps trained, params, retried trial, error."""
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
            "retry_of": t.system_attrs.get("failed_trial"),
            "error": t.user_attrs.get("error"),
        }
        for t in trials
    ]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table, without the error column and empty columns (for the log)."""
    columns = [c for c in rows[0] if c != "error" and any(r[c] is not None for r in rows)] if rows else []
    cells = [[short_name(c) for c in columns]] + [[_cell(r[c]) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells)


def write_results(study: optuna.Study, out: Path, plots: bool) -> dict[str, Any]:
    """Write ``trials.csv``, ``best.json`` and plots to ``out``, print the table; return the best-trial summary."""
    out.mkdir(parents=True, exist_ok=True)
    rows = redact(trial_rows(study))
    with open(out / "trials.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
    best = study.best_trial if any(t.state == TrialState.COMPLETE for t in study.trials) else None
    summary = {
        "study_name": study.study_name,
        "direction": study.direction.name.lower(),
        "best_trial": best.number if best else None,
        "best_value": best.value if best else None,
        "best_params": best.params if best else None,
        "best_user_attrs": best.user_attrs if best else None,  # output_dir: its run dir, with the model
        "n_trials": {s.name: sum(t.state == s for t in study.trials) for s in TrialState},
    }
    (out / "best.json").write_text(json.dumps(redact(summary), indent=2) + "\n")
    if plots and best:
        write_plots(study, out)
    best_line = "no trial COMPLETE yet"
    if best:
        params = ", ".join(f"{k}={format_param(v)}" for k, v in best.params.items())
        best_line = f"best trial {best.number}: value {best.value:.6g}, params {params}"
    print(
        f"\nStudy {study.study_name!r}:\n{format_table(rows)}\n{best_line}\nResults: {out}/trials.csv, best.json"
    )
    return summary


def write_plots(study: optuna.Study, out: Path) -> None:
    """Optimization history, parameter importances, objective vs each parameter and intermediate values.

    A plot that needs more finished trials than the study has is skipped with a log line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    plots: dict[str, Callable[[], Any]] = {
        "optimization_history": lambda: ovm.plot_optimization_history(study),
        "param_importances": lambda: ovm.plot_param_importances(study),
        **{
            f"objective_vs_{short_name(name)}": functools.partial(ovm.plot_slice, study, params=[name])
            for name in sorted(study.best_trial.params)
        },
        "intermediate_values": lambda: ovm.plot_intermediate_values(study),
    }
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
        run.finish()
    except Exception as e:  # tracking must never lose the sweep's results, which are on disk already
        log.warning("could not write the W&B sweep summary run: %s", e)
