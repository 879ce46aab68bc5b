"""Training throughput as a user pays for it: samples and real (non-pad) tokens per second of training.

The Trainer's own ``train_samples_per_second`` divides by the whole ``train()`` time, evaluations and
checkpoint writes included. :class:`TrainThroughputCallback` counts only the time spent in training
steps (data loading, forward, backward, optimizer), and :class:`CountingCollator` counts what the
batches held, so the share of computation spent on padding is visible.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

TOTALS_FILE = "throughput_totals-{rank}.json"


@dataclass
class BatchCounts:
    samples: int = 0
    real_tokens: int = 0
    padded_tokens: int = 0  # batch width x rows, what the model computes on


class CountingCollator:
    """Wraps a data collator and counts rows, real tokens and padded positions of every batch."""

    def __init__(self, collator: Any) -> None:
        self.collator = collator
        self.counts = BatchCounts()
        self.active = True  # off while the Trainer evaluates with the same collator

    def __call__(self, features: list[dict[str, Any]]) -> Any:
        batch = self.collator(features)
        if not self.active:
            return batch
        mask = batch["attention_mask"]
        self.counts.samples += int(mask.shape[0])
        self.counts.real_tokens += int(mask.sum())
        self.counts.padded_tokens += int(mask.numel())
        return batch


def _rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


def _sum_over_processes(counts: BatchCounts) -> BatchCounts:
    if not torch.distributed.is_initialized():
        return counts
    device = "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"
    values = torch.tensor([counts.samples, counts.real_tokens, counts.padded_tokens], device=device)
    torch.distributed.all_reduce(values)
    return BatchCounts(*(int(v) for v in values.tolist()))


def wait_for_gpu() -> None:
    """A GPU runs the queued steps after the Python side has moved on: wait for them before reading the clock."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class TrainThroughputCallback(TrainerCallback):
    """Sums the wall time between training steps, leaving out evaluations and checkpoint saves.

    On a GPU the clock is read after the queued work has finished wherever training pauses (before an
    evaluation or a save, at the end of an epoch), so that work is not billed to the evaluation.
    """

    def __init__(self, collator: CountingCollator) -> None:
        self.collator = collator
        self.seconds = 0.0
        self._mark: float | None = None

    def _restart(self, *args: Any, **kwargs: Any) -> None:
        self.collator.active = True
        self._mark = time.perf_counter()

    on_train_begin = on_epoch_begin = on_evaluate = _restart

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # save_strategy=best decides to save after the evaluation, past on_step_end: keep the totals now.
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir() and not (folder / TOTALS_FILE.format(rank=_rank())).is_file():
            self._keep_totals(args, state)
        self._restart()

    def _keep_totals(self, args: Any, state: Any) -> None:
        """Write this process's totals into the checkpoint about to be saved, before the Trainer writes
        it (so a checkpoint complete enough to resume from has them): a resumed run reports totals."""
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / TOTALS_FILE.format(rank=_rank())
        path.with_suffix(".tmp").write_text(
            json.dumps({"seconds": self.seconds, **asdict(self.collator.counts)})
        )
        os.replace(path.with_suffix(".tmp"), path)

    def resume_from(self, checkpoint: str | None) -> None:
        """Start from this process's totals kept in ``checkpoint`` (none: from zero)."""
        path = Path(checkpoint) / TOTALS_FILE.format(rank=_rank()) if checkpoint else None
        if path is None or not path.is_file():
            return
        totals = json.loads(path.read_text(encoding="utf-8"))
        self.seconds = float(totals.pop("seconds"))
        self.collator.counts = BatchCounts(**totals)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if control.should_evaluate or control.should_save or control.should_training_stop:
            wait_for_gpu()
        now = time.perf_counter()
        if self._mark is not None:
            self.seconds += now - self._mark
        self._mark = now
        if control.should_evaluate:
            self.collator.active = False
        if control.should_save:
            self._keep_totals(args, state)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.collator.active = False
        if self._mark is not None:
            wait_for_gpu()
            self.seconds += time.perf_counter() - self._mark
        self._mark = None
        if control.should_save:
            self._keep_totals(args, state)

    def summary(self) -> dict[str, Any]:
        """Totals over all processes (each counts its own batches) and all parts of a resumed run."""
        c = _sum_over_processes(self.collator.counts)
        per_s = (lambda n: round(n / self.seconds, 2)) if self.seconds > 0 else (lambda n: None)
        return {
            "train_seconds": round(self.seconds, 2),
            "samples": c.samples,
            "samples_per_second": per_s(c.samples),
            "real_tokens_per_second": per_s(c.real_tokens),
            "padding_fraction": round(1 - c.real_tokens / c.padded_tokens, 4) if c.padded_tokens else None,
        }
