"""``trainer.evals_per_epoch``: evaluations at k/evals_per_epoch of each epoch, not only at its end.

The Trainer evaluates at the end of each epoch (``eval_strategy=epoch``); :class:`EvaluateWithinEpochs`
asks for the evaluations in between. Positions come from ``state.epoch`` (the fraction of the epoch's
batches done), so they fall at the same share of an epoch whatever the batch size.
"""

from __future__ import annotations

import math
from typing import Any

from transformers import TrainerCallback


def evaluation_index(epoch: float, evals_per_epoch: int) -> int:
    """How many evaluation points (each 1/evals_per_epoch of an epoch) lie at or before ``epoch``."""
    return math.floor(epoch * evals_per_epoch + 1e-6)


class EvaluateWithinEpochs(TrainerCallback):
    """Sets ``should_evaluate`` when training passes k/evals_per_epoch of an epoch (k < evals_per_epoch);
    the epoch's end is evaluated by the Trainer itself."""

    def __init__(self, evals_per_epoch: int) -> None:
        self.evals_per_epoch = evals_per_epoch
        self.last_index = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.last_index = evaluation_index(state.epoch or 0.0, self.evals_per_epoch)  # resumed: where it was

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        index = evaluation_index(state.epoch or 0.0, self.evals_per_epoch)
        if index > self.last_index:
            self.last_index = index
            if index % self.evals_per_epoch:
                control.should_evaluate = True
