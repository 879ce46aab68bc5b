"""Experiment tracking: W&B (online, or offline when there are no credentials), TensorBoard, or none.

Each run (each multirun job too) starts and finishes its own W&B run, so trials never land in the
first trial's run (transformers' WandbCallback only starts a run when none is active).
"""

from __future__ import annotations

import logging
import netrc
import os
import re
from pathlib import Path
from typing import Any, Literal, cast

from ner_experiments.config import LoggerConfig

log = logging.getLogger(__name__)

WandbMode = Literal["online", "offline", "disabled"]
WANDB_MODES: tuple[WandbMode, ...] = ("online", "offline", "disabled")
BEST_METRIC = "eval/overall_f1"  # a run's summary shows its best value and the epoch it was reached
SECRET_KEY = re.compile(r"(token|api_key|apikey|password|secret)", re.IGNORECASE)


def scrub_secrets(data: Any) -> Any:
    """A copy of nested config data with values of secret-looking keys removed."""
    if isinstance(data, dict):
        return {k: ("<redacted>" if SECRET_KEY.search(str(k)) else scrub_secrets(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [scrub_secrets(v) for v in data]
    return data


def wandb_credentials_found() -> bool:
    """True when W&B can log in without asking: WANDB_API_KEY, or the netrc entry ``wandb login`` writes."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    # An explicit path, as wandb reads it: netrc's own default would refuse a file others can read.
    path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    try:
        rc = netrc.netrc(path)
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
    return rc.authenticators(host) is not None


def resolve_wandb_mode(requested: str | None) -> WandbMode:
    """The W&B mode of every run, trials and a sweep's summary run alike: online, offline or disabled.

    ``WANDB_MODE`` in the environment wins, then ``requested`` (``logger.mode``) unless it is ``auto``
    or unset; ``auto`` is online when :func:`wandb_credentials_found`, else offline.
    """
    for mode in (os.environ.get("WANDB_MODE"), requested):
        if mode in WANDB_MODES:
            return cast(WandbMode, mode)
    return "online" if wandb_credentials_found() else "offline"


class Tracker:
    """Starts the configured tracker for one run and tells the Trainer what to report to."""

    def __init__(
        self,
        cfg: LoggerConfig,
        run_dir: Path,
        run_name: str,
        config: dict[str, Any],
        is_main: bool,
        extra_tags: list[str] | None = None,
    ) -> None:
        self.cfg = cfg
        self.tags = list(dict.fromkeys([*cfg.tags, *(extra_tags or [])]))
        self.run_dir = run_dir
        self.run_name = run_name
        self.config = scrub_secrets(config)
        self.is_main = is_main
        self.wandb_run: Any = None
        self.report_to: list[str] = []

    def start(self) -> None:
        if self.cfg.backend == "tensorboard":
            os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(self.run_dir / "tensorboard"))
            self.report_to = ["tensorboard"]
        elif self.cfg.backend == "wandb":
            self._start_wandb()

    def _start_wandb(self) -> None:
        mode = resolve_wandb_mode(self.cfg.mode)
        if mode == "disabled":
            return
        self.report_to = ["wandb"]
        if not self.is_main:
            return
        import wandb

        os.environ.setdefault("WANDB_LOG_MODEL", "false")
        os.environ.setdefault("WANDB_WATCH", "false")
        self.wandb_run = wandb.init(
            project=self.cfg.project,
            entity=self.cfg.entity,
            name=self.run_name,
            group=self.cfg.group,
            tags=self.tags or None,
            job_type=self.cfg.job_type,
            config=self.config,
            dir=str(self.run_dir),
            mode=mode,
            reinit="finish_previous",
        )
        self.wandb_run.define_metric(BEST_METRIC, summary="max")
        if mode == "offline":
            log.warning(
                "W&B: no credentials found (WANDB_API_KEY or `wandb login`), logging offline to %s. "
                "Upload it later with: wandb sync %s",
                self.wandb_run.dir if self.wandb_run else self.run_dir,
                Path(self.wandb_run.dir).parent if self.wandb_run else self.run_dir / "wandb",
            )

    @property
    def url(self) -> str | None:
        run = self.wandb_run
        if run is None:
            return None
        try:
            return run.get_url() if not run.settings._offline else None
        except Exception:
            return None

    def summary(self, values: dict[str, Any]) -> None:
        if self.wandb_run is not None:
            for key, value in values.items():
                self.wandb_run.summary[key] = value

    def finish(
        self, failed: bool = False, state: str | None = None, log_history: list[dict] | None = None
    ) -> None:
        """Close the W&B run (called in ``finally``), with a non-zero exit code only when the run failed.

        ``state`` (finished | pruned | failed) goes into the summary as ``state``; from the Trainer's
        ``log_history`` the summary gets ``best/eval_overall_f1`` and ``best/epoch`` where it was reached.
        """
        if self.wandb_run is not None:
            try:
                self.summary(
                    {"state": state or ("failed" if failed else "finished"), **best_evaluation(log_history)}
                )
            except Exception as e:  # never lose the run's exit over its summary
                log.warning("could not write the W&B run's summary: %s", e)
            try:
                self.wandb_run.finish(exit_code=1 if failed else 0)
            finally:
                self.wandb_run = None


def best_evaluation(log_history: list[dict] | None) -> dict[str, Any]:
    """``best/eval_overall_f1`` and ``best/epoch`` (the first evaluation reaching it) from a Trainer's log."""
    key = "eval_" + BEST_METRIC.partition("/")[2]
    evaluations = [e for e in log_history or [] if isinstance(e.get(key), (int, float))]
    if not evaluations:
        return {}
    best = max(evaluations, key=lambda e: e[key])  # max keeps the first of equal scores
    return {f"best/{key}": best[key], "best/epoch": best.get("epoch")}
