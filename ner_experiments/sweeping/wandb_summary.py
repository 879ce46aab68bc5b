"""The end of a sweep on W&B: one summary run in the study's group with the best trial and all trials."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna

from ner_experiments.sweeping.results import trial_rows
from ner_experiments.tracking import resolve_wandb_mode

log = logging.getLogger(__name__)


def log_sweep_summary(study: optuna.Study, config: Any, sweep_dir: Path, summary: dict[str, Any]) -> None:
    """Create the ``<study>-summary`` run (group = study name) holding best params/value and the trial table."""
    try:
        import wandb
    except ImportError:
        log.warning("wandb is not installed: no sweep summary run")
        return
    logger = config.logger
    try:
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
        if rows:
            columns = list(rows[0])
            run.log(
                {
                    "trials": wandb.Table(
                        columns=list[str | int](columns), data=[[_plain(r[c]) for c in columns] for r in rows]
                    )
                }
            )
        run.summary["best_trial"] = summary["best_trial"]
        run.summary["best_value"] = summary["best_value"]
        for key, value in (summary["best_params"] or {}).items():
            run.summary[f"best_params/{key}"] = value
        for state, count in summary["n_trials"].items():
            run.summary[f"n_trials/{state}"] = count
        run.finish()
    except Exception as e:  # tracking must never lose the sweep's results, which are on disk already
        log.warning("could not write the W&B sweep summary run: %s", e)


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
