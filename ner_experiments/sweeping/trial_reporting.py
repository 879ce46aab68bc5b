"""Training-side half of a sweep: report each evaluation to the trial's study, stop when pruned.

The sweeper gives every trial ``optuna.storage``, ``optuna.study_name`` and ``optuna.trial_number``.
Reports go through the shared storage, so a trial may run in another process or on another machine;
the trial process also writes its heartbeat, so a dead one is detected by any worker and queued again.
"""

from __future__ import annotations

import logging
import math
import sys
import warnings
from typing import Any

import optuna

from ner_experiments.sweeping.confirmation import CONFIRM_OF
from ner_experiments.sweeping.pruning import STEPS_PER_EPOCH, epoch_step
from ner_experiments.sweeping.study import Heartbeats, open_storage, pruner_from_json

log = logging.getLogger(__name__)


def objective_metric_key(objective: str) -> str:
    """``validation.overall_f1`` -> ``eval_overall_f1``: the key of the objective in ``evaluate()``'s metrics."""
    return f"eval_{objective.partition('.')[2] or objective}"


class TrialAbandoned(RuntimeError):
    """The study already finished this trial (another worker failed it for a missed heartbeat)."""


class TrialReporter:
    """Reports intermediate objective values of one trial and says when to stop (any training loop).

    Call :meth:`report` after each evaluation and stop when it returns True; then :meth:`finish`
    and :meth:`raise_if_stopped`.
    """

    def __init__(
        self, storage_url: str, study_name: str, trial_number: int, heartbeat_interval: int | None
    ) -> None:
        self.storage = open_storage(storage_url)
        self.study = optuna.load_study(study_name=study_name, storage=self.storage)
        self.study.pruner = pruner_from_json(self.study.user_attrs.get("pruner"))  # Optuna does not store it
        self.trial_number = trial_number
        self.trial_id = self.storage.get_trial_id_from_study_id_trial_number(
            self.study._study_id, trial_number
        )
        self.trial = optuna.trial.Trial(self.study, self.trial_id)
        if CONFIRM_OF in self.trial.user_attrs:  # a confirmation run is never pruned: it runs to the end
            self.study.pruner = optuna.pruners.NopPruner()
        self.pruned_at_step: int | None = None
        self.abandoned = False
        self._heartbeats = Heartbeats(self.storage, heartbeat_interval)
        self._heartbeats.add(self.trial_id)

    def report(self, value: float, step: int, steps_trained: int | None = None) -> bool:
        """Report ``value`` at ``step``; True when training should stop (pruned, or trial already ended).

        ``steps_trained``: optimizer steps so far, when ``step`` counts something else (training reports in
        hundredths of an epoch).
        """
        try:
            self.storage.set_trial_user_attr(
                self.trial_id, "steps_trained", step if steps_trained is None else steps_trained
            )
            if math.isnan(value):
                return False
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # a second report at the same step is ignored
                self.trial.report(value, step)
            if self.trial.should_prune():
                self.pruned_at_step = step
                self.storage.set_trial_user_attr(self.trial_id, "pruned_at_step", step)
                log.info("Optuna trial %d pruned at step %d (objective %.4f)", self.trial_number, step, value)
        except optuna.exceptions.UpdateFinishedTrialError:
            self.abandoned = True
            log.warning(
                "Optuna trial %d was finished by the study (missed heartbeat?): stopping", self.trial_number
            )
        return self.pruned or self.abandoned

    @property
    def pruned(self) -> bool:
        return self.pruned_at_step is not None

    def finish(self, steps: int) -> None:
        """Record how far training went and stop the heartbeat."""
        self._heartbeats.stop()
        try:
            self.storage.set_trial_user_attr(self.trial_id, "steps_trained", steps)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass

    def raise_if_stopped(self) -> None:
        """Raise :class:`optuna.TrialPruned` if the pruner stopped the trial, :class:`TrialAbandoned` if the study did."""
        self._heartbeats.stop()
        if self.abandoned:
            raise TrialAbandoned(
                f"trial {self.trial_number} was finished by another worker (missed heartbeat)"
            )
        if self.pruned:
            raise optuna.TrialPruned(f"trial {self.trial_number} pruned at step {self.pruned_at_step}")


def _record_wandb_run(reporter: TrialReporter) -> None:
    """The trial's W&B run (if training opened one) in its Optuna user attributes, hence trials.csv."""
    run = getattr(sys.modules.get("wandb"), "run", None)
    try:
        if run is not None:
            reporter.storage.set_trial_user_attr(reporter.trial_id, "wandb_run_id", run.id)
            if not run.settings._offline:
                reporter.storage.set_trial_user_attr(reporter.trial_id, "wandb_url", run.get_url())
    except Exception as e:  # never fail training over tracking
        log.warning("could not record the W&B run in the trial: %s", e)


def _tag_wandb_run(reporter: TrialReporter) -> None:
    """Tag the trial's W&B run, if training opened one, with its trial number and how it ended."""
    run = getattr(sys.modules.get("wandb"), "run", None)
    try:
        if run is not None:
            run.summary["optuna/trial_number"] = reporter.trial_number
            run.summary["optuna/state"] = "PRUNED" if reporter.pruned else "COMPLETE"
            run.tags = (*(run.tags or ()), *(["pruned"] if reporter.pruned else []))
    except Exception as e:  # never fail training over tracking
        log.warning("could not tag the W&B run of the trial: %s", e)


def build_trial_callback(cfg: Any) -> Any:
    """A ``transformers.TrainerCallback`` reporting ``cfg.objective`` to the trial's study, or None outside a sweep."""
    if not cfg.optuna.storage:
        return None
    from omegaconf import OmegaConf
    from transformers import TrainerCallback

    from ner_experiments.train.eval_schedule import evaluation_index

    class OptunaPruningCallback(TrainerCallback):
        """Reports the objective at each evaluation to the Optuna trial and stops training when pruned."""

        def __init__(self) -> None:
            o = cfg.optuna
            self.reporter = TrialReporter(o.storage, o.study_name, o.trial_number, o.heartbeat_interval)
            self.metric_key = objective_metric_key(str(cfg.objective))
            # Steps of intermediate values: hundredths of an epoch at each evaluation point, the same for
            # every trial of the study whatever its batch size (eval_strategy=steps: hundredths as they fall).
            epoch_evals = OmegaConf.select(cfg, "trainer.eval_strategy", default="epoch") == "epoch"
            self.evals_per_epoch = int(OmegaConf.select(cfg, "trainer.evals_per_epoch", default=1))
            if not epoch_evals:
                self.evals_per_epoch = STEPS_PER_EPOCH
            self.training_ended = False

        @property
        def pruned(self) -> bool:
            return self.reporter.pruned

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # noqa: ANN001
            # After training, evaluate() is called for the final scores: no more reports then.
            if not self.training_ended and self.metric_key in (metrics or {}):
                k = self.evals_per_epoch
                step = epoch_step(evaluation_index(state.epoch or 0.0, k), k)
                value = float(metrics[self.metric_key])
                control.should_training_stop |= self.reporter.report(value, step, state.global_step)
            return control

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            _record_wandb_run(self.reporter)
            return control

        def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
            self.training_ended = True
            self.reporter.finish(state.global_step)
            _tag_wandb_run(self.reporter)
            return control

    return OptunaPruningCallback()


def raise_if_pruned(callbacks: list[Any] | None) -> None:
    """Raise :class:`optuna.TrialPruned` if one of ``callbacks`` pruned its trial.

    Call it after ``trainer.train()`` returns, so a pruned trial ends as PRUNED instead of going on
    to testing and publishing.
    """
    for callback in callbacks or []:
        if isinstance(getattr(callback, "reporter", None), TrialReporter):
            callback.reporter.raise_if_stopped()
