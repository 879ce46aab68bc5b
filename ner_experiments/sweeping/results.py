"""What a sweep leaves behind: a table of trials, the best trial, and plots, in the sweep directory."""

from __future__ import annotations

import csv
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ner_experiments.sweeping.search_space import format_param, short_name

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per trial: number, state, objective, duration, steps trained, params, error."""
    param_names = sorted({name for t in study.trials for name in t.params})
    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "duration_s": round(t.duration.total_seconds(), 1) if t.duration else None,
            "steps_trained": t.user_attrs.get("steps_trained"),
        }
        row.update({name: t.params.get(name) for name in param_names})
        row["retry_of"] = t.system_attrs.get("failed_trial")
        row["error"] = t.user_attrs.get("error")
        rows.append(row)
    return rows


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best COMPLETE trial, or None when no trial completed."""
    try:
        return study.best_trial
    except ValueError:
        return None


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table (for the log)."""
    if not rows:
        return "(no trials)"
    columns = [c for c in rows[0] if c != "error" and any(r.get(c) is not None for r in rows)]

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    header = [short_name(c) for c in columns]
    body = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(lines)


def summary_text(study: optuna.Study) -> str:
    """The table of trials and a line on the best trial, as printed at the end of a sweep."""
    best = best_trial(study)
    if best is None:
        best_line = "no trial COMPLETE yet"
    else:
        params = ", ".join(f"{k}={format_param(v)}" for k, v in best.params.items())
        best_line = f"best trial {best.number}: value {best.value:.6g}, params {params}"
    return f"{format_table(trial_rows(study))}\n{best_line}"


def write_results(study: optuna.Study, out_dir: str | Path, plots: bool = True) -> dict[str, Any]:
    """Write ``trials.csv``, ``best.json`` and the PNG plots to ``out_dir``; return the best-trial summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = trial_rows(study)
    with open(out / "trials.csv", "w", newline="") as f:
        if rows:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    best = best_trial(study)
    counts = {s.name: sum(1 for t in study.trials if t.state == s) for s in TrialState}
    summary: dict[str, Any] = {
        "study_name": study.study_name,
        "direction": study.direction.name.lower(),
        "best_trial": best.number if best else None,
        "best_value": best.value if best else None,
        "best_params": best.params if best else None,
        "best_user_attrs": best.user_attrs if best else None,
        "n_trials": counts,
    }
    (out / "best.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if plots:
        write_plots(study, out)
    return summary


def write_plots(study: optuna.Study, out: Path) -> list[Path]:
    """Optimization history, parameter importances and objective vs each parameter, as PNG files.

    Plots that need more finished trials than the study has are skipped with a log line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    written: list[Path] = []
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]

    def save(name: str, make: Any) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = make()
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.tight_layout()
            fig.savefig(out / name, dpi=100)
            plt.close(fig)
            written.append(out / name)
        except Exception as e:  # too few trials, constant parameter, ...
            log.info("plot %s skipped: %s", name, e)
            plt.close("all")

    if not complete:
        log.info("no COMPLETE trial yet: plots skipped")
        return written
    save("optimization_history.png", lambda: ovm.plot_optimization_history(study))
    if len(complete) >= 2 and study.best_trial.params:
        save("param_importances.png", lambda: ovm.plot_param_importances(study))
    for name in sorted({n for t in complete for n in t.params}):
        save(f"objective_vs_{short_name(name)}.png", lambda n=name: ovm.plot_slice(study, params=[n]))
    save("intermediate_values.png", lambda: ovm.plot_intermediate_values(study))
    return written
