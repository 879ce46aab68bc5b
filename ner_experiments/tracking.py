"""Experiment tracking: W&B (online, or offline when there are no credentials), TensorBoard, or none.

Each run (each multirun job too) starts and finishes its own W&B run, so trials never land in the
first trial's run (transformers' WandbCallback only starts a run when none is active).
"""

from __future__ import annotations

import json
import logging
import netrc
import os
from pathlib import Path
from typing import Any, Literal, cast

from ner_experiments.config import LoggerConfig
from ner_experiments.redaction import redact, redact_text

log = logging.getLogger(__name__)

WandbMode = Literal["online", "offline", "disabled"]
WANDB_MODES: tuple[WandbMode, ...] = ("online", "offline", "disabled")
BEST_METRIC = "eval/overall_f1"  # a run's summary shows its best value and the epoch it was reached
# What a TensorBoard HParams row compares besides the keys set on the command line (or by a sweep).
RECIPE_KEYS = (
    "model.name",
    "dataset.name",
    "trainer.learning_rate",
    "trainer.per_device_train_batch_size",
    "trainer.gradient_accumulation_steps",
    "trainer.num_train_epochs",
    "trainer.max_steps",
    "trainer.weight_decay",
    "trainer.warmup_ratio",
    "trainer.lr_scheduler_type",
    "trainer.optim",
    "trainer.train_sampling",
    "model.max_length",
    "label_all_subwords",
    "seed",
)
PLUMBING_PREFIXES = ("optuna.", "logger.", "hydra.", "paths.", "hub.", "resume", "experiment")
# TENSORBOARD_LOGGING_DIR as the user set it: otherwise each run (each multirun job) gets its own.
_USER_TENSORBOARD_DIR = os.environ.get("TENSORBOARD_LOGGING_DIR")


def scrub_secrets(data: Any) -> Any:
    """A copy of nested config data with its secrets redacted (:func:`ner_experiments.redaction.redact`)."""
    return redact(data)


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
    return wandb_mode_and_reason(requested)[0]


def wandb_mode_and_reason(requested: str | None) -> tuple[WandbMode, str]:
    """:func:`resolve_wandb_mode` and why, in words for the log: which setting decided it."""
    env = os.environ.get("WANDB_MODE")
    if env in WANDB_MODES:
        return cast(WandbMode, env), f"WANDB_MODE={env} is set"
    if requested in WANDB_MODES:
        return cast(WandbMode, requested), f"logger.mode={requested}"
    if wandb_credentials_found():
        return "online", "W&B credentials were found"
    return "offline", "no W&B credentials were found (WANDB_API_KEY or `wandb login`)"


def hparams_of(config: dict[str, Any], overrides: list[str]) -> dict[str, bool | int | float | str]:
    """The hyperparameters a TensorBoard HParams row shows: the recipe's keys (:data:`RECIPE_KEYS`) and
    every key set on the command line (a sweep's searched keys too), with scalar values."""
    keys = list(RECIPE_KEYS)
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if "=" in override and not key.startswith(PLUMBING_PREFIXES) and "/" not in key:
            keys.append(key)
    found: dict[str, bool | int | float | str] = {}
    for key in dict.fromkeys(keys):
        node: Any = config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            continue
        found[key] = node if isinstance(node, bool | int | float | str) else str(node)
    return found


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
            os.environ["TENSORBOARD_LOGGING_DIR"] = _USER_TENSORBOARD_DIR or str(self.tensorboard_dir)
            self.report_to = ["tensorboard"]
        elif self.cfg.backend == "wandb":
            self._start_wandb()

    @property
    def tensorboard_dir(self) -> Path:
        return Path(_USER_TENSORBOARD_DIR or self.run_dir / "tensorboard")

    def _start_wandb(self) -> None:
        mode, reason = wandb_mode_and_reason(self.cfg.mode)
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
                "W&B: logging offline (%s) to %s. Upload it later with: wandb sync %s",
                reason,
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

    def summary(
        self,
        values: dict[str, Any],
        hparams: dict[str, Any] | None = None,
        scalars: dict[str, float] | None = None,
        step: int = 0,
    ) -> None:
        """The run's final scores: W&B's run summary; with TensorBoard, ``scalars`` (e.g. the test scores)
        at ``step`` and an HParams row of ``hparams`` with ``values`` as its metrics."""
        if self.wandb_run is not None:
            for key, value in values.items():
                self.wandb_run.summary[key] = value
        if self.cfg.backend == "tensorboard" and self.is_main:
            self._write_tensorboard_results(values, hparams or {}, scalars or {}, step)

    def _write_tensorboard_results(
        self, metrics: dict[str, Any], hparams: dict[str, Any], scalars: dict[str, float], step: int
    ) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        metric_dict = {f"final/{k.replace('/', '_')}": float(v) for k, v in metrics.items()}
        with SummaryWriter(log_dir=str(self.tensorboard_dir)) as writer:
            for key, value in scalars.items():
                writer.add_scalar(key, float(value), step)
            for key, value in metric_dict.items():
                writer.add_scalar(key, value, step)
            for summary in hparams_summary(redact(hparams), metric_dict):
                writer.file_writer.add_summary(summary)
            writer.add_text("config", redact_text(json.dumps(self.config, indent=2, default=str)), step)

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


def import_trainer_integrations_quietly() -> None:
    """Import transformers' tracker integrations without the "Running in WANDB offline mode" line they
    print whenever WANDB_MODE=offline is set, even with logger=none; a W&B run says why it is offline
    itself (:class:`Tracker`)."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        import transformers.integrations.integration_utils  # noqa: F401
