"""Pruning that compares like with like: a trial is judged only against trials of the same or a longer schedule.

With a linear learning-rate decay, a 3-epoch trial at its last epoch has decayed its learning rate to
zero and scores its best, while a 10-epoch trial at epoch 3 still trains at 70% of its peak rate.
Compared at the same epoch, the long schedule looks worse for a reason that has nothing to do with how
it will end. :class:`SameOrLongerSchedulePruner` hands Optuna's own pruner (median, successive halving)
a view of the study holding only the trials whose ``trainer.num_train_epochs`` is at least the judged
trial's: their learning rate at that epoch is as high or higher, so the comparison can only favour
the judged trial. Trials without the parameter (epochs not searched) share one schedule: no filter.

Intermediate values are keyed in hundredths of an epoch (:func:`epoch_step`), so trials with other
batch sizes are compared at the same amount of training.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

SCHEDULE_PARAM = "trainer.num_train_epochs"
STEPS_PER_EPOCH = 100  # the unit of intermediate values: hundredths of an epoch


def epoch_step(evaluation_index: int, evals_per_epoch: int) -> int:
    """The step an evaluation is reported at: the ``evaluation_index``-th of ``evals_per_epoch`` per epoch,
    in hundredths of an epoch (2 per epoch: 50, 100, 150, ...; 3 per epoch: 33, 67, 100, ...)."""
    return round(STEPS_PER_EPOCH * evaluation_index / evals_per_epoch)


class _SameOrLongerSchedules(optuna.study.Study):
    """The study as the wrapped pruner sees it: only trials with a schedule of at least ``length``."""

    def __init__(self, study: optuna.Study, param: str, length: float) -> None:
        # No Study.__init__: the view shares the study's storage, id and sampler (no database round trip).
        self.__dict__.update(study.__dict__)
        self._schedule_param, self._schedule_length = param, length

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        trials = super().get_trials(deepcopy=deepcopy, states=states)
        param, length = self._schedule_param, self._schedule_length
        return [t for t in trials if t.params.get(param, length) >= length]


class SameOrLongerSchedulePruner(optuna.pruners.BasePruner):
    """``pruner`` (an Optuna pruner) applied to the trials whose ``param`` is >= the judged trial's."""

    def __init__(self, pruner: optuna.pruners.BasePruner, param: str = SCHEDULE_PARAM) -> None:
        self.pruner, self.param = pruner, param

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        length = trial.params.get(self.param)
        if length is None:
            return self.pruner.prune(study, trial)
        return self.pruner.prune(_SameOrLongerSchedules(study, self.param, length), trial)

    def __repr__(self) -> str:
        return f"SameOrLongerSchedulePruner({type(self.pruner).__name__}, {self.param})"


def wrap_pruner(pruner: optuna.pruners.BasePruner, same_or_longer_schedule: bool) -> Any:
    """``pruner`` comparing like schedules only, when asked and when it compares trials (not none/hyperband:
    Hyperband builds its own bracket views of the study, which a filter cannot reach)."""
    if not same_or_longer_schedule or isinstance(
        pruner, (optuna.pruners.NopPruner, optuna.pruners.HyperbandPruner)
    ):
        return pruner
    return SameOrLongerSchedulePruner(pruner)
