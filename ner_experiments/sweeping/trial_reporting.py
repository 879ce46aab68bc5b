"""Training-side half of a sweep: report each evaluation to the trial's Optuna study and stop when pruned.

The sweeper gives every trial ``optuna.storage``, ``optuna.study_name`` and ``optuna.trial_number``.
Training passes :func:`build_trial_callback` to the Hugging Face ``Trainer``; the callback reports
the objective at every evaluation through the shared storage (so it works when the trial runs in
another process or on another machine), asks the study's pruner, and stops training when told to.
After ``trainer.train()`` returns, training calls :func:`raise_if_pruned`, which raises
:class:`optuna.TrialPruned`; the sweeper records the trial as PRUNED.

While training, the trial process also writes the trial's heartbeat, so a trial whose process died
is detected by any worker of the study, marked FAIL and queued again.
"""

from __future__ import annotations

import logging
import math
import sys
import warnings
from collections.abc import Iterable
from typing import Any

import optuna

log = logging.getLogger(__name__)


def objective_metric_key(objective: str) -> str:
    """``validation.overall_f1`` -> ``eval_overall_f1``: the key of the objective in ``evaluate()``'s metrics."""
    _, _, metric = objective.partition(".")
    return f"eval_{metric or objective}"


class TrialAbandoned(RuntimeError):
    """The study already finished this trial (another worker failed it for a missed heartbeat)."""


class TrialReporter:
    """Reports intermediate objective values of one trial and says when to stop.

    Independent of transformers, so any training loop can use it: call :meth:`report` after each
    evaluation and stop when it returns True; call :meth:`finish` at the end.
    """

    def __init__(
        self,
        storage_url: str,
        study_name: str,
        trial_number: int,
        heartbeat_interval: int | None = None,
    ) -> None:
        from ner_experiments.sweeping.heartbeat import Heartbeats
        from ner_experiments.sweeping.samplers import pruner_from_json
        from ner_experiments.sweeping.storage import open_storage

        self.storage = open_storage(storage_url)
        self.study = optuna.load_study(study_name=study_name, storage=self.storage)
        # Pruners are not stored by Optuna: the sweeper writes its choice into the study for trials to use.
        self.study.pruner = pruner_from_json(self.study.user_attrs.get("pruner"))
        self.trial_number = trial_number
        self.trial_id = self.storage.get_trial_id_from_study_id_trial_number(
            self.study._study_id, trial_number
        )
        self.trial = optuna.trial.Trial(self.study, self.trial_id)
        self.pruned = False
        self.abandoned = False
        self.pruned_at_step: int | None = None
        self.last_step = 0
        self._heartbeats = Heartbeats(self.storage, heartbeat_interval)
        self._heartbeats.add(self.trial_id)

    def report(self, value: float, step: int, epoch: float | None = None) -> bool:
        """Report ``value`` at ``step``; True when training should stop (pruned, or trial already ended)."""
        self.last_step = step
        attrs: dict[str, Any] = {"steps_trained": step}
        if epoch is not None:
            attrs["epochs_trained"] = epoch
        try:
            for key, val in attrs.items():
                self.storage.set_trial_user_attr(self.trial_id, key, val)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return False
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # a second report at the same step is ignored
                self.trial.report(float(value), step)
            if self.trial.should_prune():
                self.pruned = True
                self.pruned_at_step = step
                self.storage.set_trial_user_attr(self.trial_id, "pruned_at_step", step)
                log.info("Optuna trial %d pruned at step %d (objective %.4f)", self.trial_number, step, value)
                return True
        except optuna.exceptions.UpdateFinishedTrialError:
            self.abandoned = True
            log.warning(
                "Optuna trial %d was already finished by the study (missed heartbeat?); stopping",
                self.trial_number,
            )
            return True
        return False

    def finish(self, steps: int | None = None, epoch: float | None = None) -> None:
        """Record how far training went and stop the heartbeat."""
        self._heartbeats.stop()
        try:
            if steps is not None:
                self.storage.set_trial_user_attr(self.trial_id, "steps_trained", steps)
            if epoch is not None:
                self.storage.set_trial_user_attr(self.trial_id, "epochs_trained", epoch)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass

    def raise_if_stopped(self) -> None:
        """Raise :class:`optuna.TrialPruned` if the pruner stopped this trial."""
        self._heartbeats.stop()
        if self.abandoned:
            raise TrialAbandoned(
                f"Optuna trial {self.trial_number} was finished by another worker (its heartbeat was missed)"
            )
        if self.pruned:
            raise optuna.TrialPruned(f"trial {self.trial_number} pruned at step {self.pruned_at_step}")


def _tag_wandb_run(reporter: TrialReporter, state: str) -> None:
    """Mark the trial's W&B run (if training opened one) with its trial number and state."""
    wandb = sys.modules.get("wandb")
    run = getattr(wandb, "run", None) if wandb is not None else None
    if run is None:
        return
    try:
        run.summary["optuna/study"] = reporter.study.study_name
        run.summary["optuna/trial_number"] = reporter.trial_number
        run.summary["optuna/state"] = state
        if state == "PRUNED":
            run.tags = tuple(run.tags or ()) + ("pruned",)
    except Exception as e:  # never fail training over tracking
        log.debug("could not tag the W&B run: %s", e)


def build_trial_callback(cfg: Any) -> Any:
    """A ``transformers.TrainerCallback`` that reports to the trial's study, or None outside a sweep.

    The objective (``cfg.objective``, e.g. ``validation.overall_f1``) is read from the metrics of
    every evaluation as ``eval_overall_f1`` and reported at ``state.global_step``.
    """
    ocfg = cfg.optuna
    if not ocfg.storage:
        return None
    if ocfg.study_name is None or ocfg.trial_number is None:
        raise ValueError("optuna.storage is set but optuna.study_name/optuna.trial_number are not")
    from transformers import TrainerCallback

    metric_key = objective_metric_key(str(cfg.objective))

    class OptunaPruningCallback(TrainerCallback):
        """Reports ``metric_key`` at each evaluation to the Optuna trial and stops training when pruned."""

        def __init__(self) -> None:
            self.reporter = TrialReporter(
                str(ocfg.storage), str(ocfg.study_name), int(ocfg.trial_number), ocfg.heartbeat_interval
            )
            self.metric_key = metric_key
            self.training_ended = False

        @property
        def pruned(self) -> bool:
            return self.reporter.pruned

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # noqa: ANN001
            if self.training_ended or not metrics or self.metric_key not in metrics:
                return control
            step = state.global_step or int(state.epoch or 0)
            if self.reporter.report(metrics[self.metric_key], step, state.epoch):
                control.should_training_stop = True
            return control

        def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
            self.training_ended = True
            self.reporter.finish(state.global_step, state.epoch)
            _tag_wandb_run(self.reporter, "PRUNED" if self.reporter.pruned else "COMPLETE")
            return control

        def raise_if_pruned(self) -> None:
            self.reporter.raise_if_stopped()

    return OptunaPruningCallback()


def raise_if_pruned(callbacks: Any) -> None:
    """Raise :class:`optuna.TrialPruned` if one of ``callbacks`` (a callback, a list, or None) pruned its trial.

    Call it after ``trainer.train()`` returns, so a pruned trial ends as PRUNED instead of going on
    to testing and publishing.
    """
    if callbacks is None:
        return
    items: Iterable[Any] = callbacks if isinstance(callbacks, (list, tuple)) else [callbacks]
    for cb in items:
        reporter = getattr(cb, "reporter", None)
        if isinstance(reporter, TrialReporter):
            reporter.raise_if_stopped()


__all__ = [
    "TrialReporter",
    "TrialAbandoned",
    "build_trial_callback",
    "raise_if_pruned",
    "objective_metric_key",
]
