"""What a run tells its log (train.log and the console): what ran, how training went, and how long each
part took, so ``train.log`` alone answers "what was this run?"; and whether progress bars are drawn.

- :func:`log_run_header`: the command line, the overrides, model, data, key hyperparameters and precision.
- :class:`TrainingLogCallback`: total steps when training starts; loss, learning rate and gradient norm
  (numbers) every ``trainer.logging_steps``; each evaluation's scores are logged by the trainer.
- :class:`RunTimer` / :func:`log_timings`: the timings at the end.
- :func:`configure_progress_bars`: ``trainer.progress_bars`` (auto: on a terminal only).
"""

from __future__ import annotations

import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from transformers import ProgressCallback, TrainerCallback

from ner_experiments.redaction import redact_text

log = logging.getLogger("ner_experiments.train")


def progress_bars_enabled(setting: str, stream: Any = None) -> bool:
    """``on``/``off`` as said; ``auto``: on when stderr (where the bars are drawn) is a terminal."""
    if setting in ("on", "off"):
        return setting == "on"
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


def configure_progress_bars(setting: str) -> bool:
    """Switch the progress bars of datasets, transformers and huggingface_hub on or off; returns which."""
    import datasets
    import huggingface_hub.utils
    import transformers

    enabled = progress_bars_enabled(setting)
    if enabled:
        datasets.enable_progress_bars()
        transformers.utils.logging.enable_progress_bar()
        huggingface_hub.utils.enable_progress_bars()
    else:
        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
        huggingface_hub.utils.disable_progress_bars()
    return enabled


def _where(path: str | None) -> str:
    return f" ({path})" if path else ""


def log_run_header(cfg: DictConfig, run_dir: Path, precision: str, overrides: list[str]) -> None:
    """The first lines of train.log: how the run was started and what it trains (secrets redacted)."""
    t, m, d = cfg.trainer, cfg.model, cfg.dataset
    command = " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]])
    data_from = d.data_dir if d.source == "files" else d.path
    epochs = (
        f"max steps {t.max_steps}" if t.max_steps and t.max_steps > 0 else f"epochs {t.num_train_epochs:g}"
    )
    lines = [
        f"command: {command}",
        f"overrides: {' '.join(overrides) or '(none)'}",
        f"run dir: {run_dir}",
        f"model: {m.name}, source {m.source}{_where(m.name_or_path)}, max length {m.max_length or 'auto'}",
        f"data: {d.name}, source {d.source}{_where(data_from)}"
        + (f", config {d.config_name}" if d.config_name else ""),
        f"hyperparameters: learning rate {t.learning_rate:g}, batch size {t.per_device_train_batch_size} x "
        f"accumulation {t.gradient_accumulation_steps}, {epochs}, weight decay {t.weight_decay:g}, "
        f"warmup ratio {t.warmup_ratio:g}, scheduler {t.lr_scheduler_type}, optimizer {t.optim}, "
        f"sampling {t.train_sampling}, seed {cfg.seed}",
        f"precision: {precision} (trainer.precision={t.precision}), objective {cfg.objective}",
    ]
    for line in lines:
        log.info(redact_text(line))


class TrainingLogCallback(TrainerCallback):
    """Training's progress in the log as numbers: the total steps at the start, then at every
    ``logging_steps`` the step, epoch, loss, learning rate and gradient norm."""

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            log.info(
                "training: %d steps (%g epochs), %d examples per step, logging every %d steps",
                state.max_steps,
                args.num_train_epochs if args.max_steps <= 0 else state.num_train_epochs,
                args.train_batch_size * args.gradient_accumulation_steps * max(1, args.world_size),
                state.logging_steps or args.logging_steps,
            )

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        logs = logs or {}
        if state.is_world_process_zero and "train_loss" in logs:
            log.info(
                "training finished at step %d: mean training loss %.4f, %.1f s (%.3g samples/s)",
                state.global_step,
                float(logs["train_loss"]),
                float(logs.get("train_runtime", 0.0)),
                float(logs.get("train_samples_per_second", 0.0)),
            )
        if not state.is_world_process_zero or "loss" not in logs:
            return
        parts = [f"loss {float(logs['loss']):.4f}"]
        if "learning_rate" in logs:
            parts.append(f"learning rate {float(logs['learning_rate']):.4g}")
        if "grad_norm" in logs:
            parts.append(f"grad norm {float(logs['grad_norm']):.4g}")
        log.info("step %d epoch %.2f: %s", state.global_step, state.epoch or 0.0, ", ".join(parts))


class QuietProgressCallback(ProgressCallback):
    """transformers' progress bar without the dict of strings it prints at each log (our log line says it)."""

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        return None


def use_log_lines_for_progress(trainer: Any) -> None:
    """Replace the Trainer's printed log dicts by :class:`TrainingLogCallback`'s lines (bars stay as set)."""
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(QuietProgressCallback)
    trainer.add_callback(TrainingLogCallback)


class RunTimer:
    """Seconds spent in each stage of a run, in order: ``with timer.stage("training"): ...``."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self._mark = self.started

    def lap(self, name: str) -> None:
        """Close the stage ``name``: the time since the previous lap (or the start)."""
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._mark
        self._mark = now

    def log(self) -> None:
        total = time.perf_counter() - self.started
        parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.seconds.items())
        log.info("timings: %s; total %.1f s", parts, total)


def validation_history(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per evaluation: epoch, step, the training loss logged last before it, and the overall validation
    scores (from the Trainer's ``state.log_history``)."""
    rows: list[dict[str, Any]] = []
    last_loss = None
    for entry in log_history:
        if "loss" in entry:
            last_loss = entry["loss"]
        if "eval_overall_f1" in entry:
            rows.append(
                {
                    "epoch": round(float(entry.get("epoch") or 0.0), 2),
                    "step": entry.get("step"),
                    "training_loss": None if last_loss is None else round(float(last_loss), 4),
                    **{
                        k: round(float(entry[f"eval_overall_{k}"]), 4)
                        for k in ("precision", "recall", "f1", "accuracy")
                        if f"eval_overall_{k}" in entry
                    },
                }
            )
    return rows
