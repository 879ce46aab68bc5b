"""The Trainer side of :mod:`ner_experiments.stopping`: a clean stop at a step boundary on SIGTERM/SIGINT
(with a checkpoint), and the disk-space check before the first step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ner_experiments.errors import RunInterrupted
from ner_experiments.stopping import PROGRESS, check_disk_space, interrupted_message

ADAM_STATES = 2  # AdamW keeps two fp32 tensors per trainable parameter


def checkpoint_sizes(model: Any) -> tuple[int, int]:
    """(bytes of one checkpoint: weights + optimizer state, bytes of the saved model), about."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    optimizer = sum(p.numel() * 4 * ADAM_STATES for p in model.parameters() if p.requires_grad)
    return weights + optimizer, weights


class StopCallback(TrainerCallback):
    """Stops training cleanly once a stop signal arrived: the current step ends, a checkpoint is saved,
    then :class:`RunInterrupted` ends the run with the step and the resume command."""

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        PROGRESS.run_dir = Path(args.output_dir).parent
        PROGRESS.saved_step = -1  # a process may train more than once (tests, in-process sweeps)
        PROGRESS.max_steps = state.max_steps
        PROGRESS.step = state.global_step
        if model is not None:
            PROGRESS.checkpoint_bytes, PROGRESS.model_bytes = checkpoint_sizes(model)
        if args.should_save:
            check_disk_space(PROGRESS.run_dir)
        PROGRESS.in_training = True

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        PROGRESS.step = state.global_step
        if PROGRESS.signum is not None:
            control.should_training_stop = True
            control.should_save = True

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        PROGRESS.saved_step = state.global_step

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if PROGRESS.signum is not None:
            control.should_training_stop = True
            if PROGRESS.saved_step == state.global_step:  # saved at the step's end: no second pass
                control.should_evaluate = control.should_save = False

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        PROGRESS.in_training = False
        if PROGRESS.signum is not None:
            raise RunInterrupted(interrupted_message(PROGRESS.signum), PROGRESS.signum)
