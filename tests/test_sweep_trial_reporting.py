"""The training side of a sweep: the Trainer callback reports, prunes, and records steps trained."""

from __future__ import annotations

import dataclasses

import optuna
import pytest
from omegaconf import OmegaConf
from transformers import TrainerControl, TrainerState

from hydra_plugins.ner_optuna_sweeper.config import PrunerConf
from ner_experiments.sweeping.trial_reporting import (
    build_trial_callback,
    objective_metric_key,
    raise_if_pruned,
)


def _cfg(storage: str | None, trial_number: int | None = None) -> object:
    return OmegaConf.create(
        {
            "objective": "validation.overall_f1",
            "optuna": {
                "storage": storage,
                "study_name": "s",
                "trial_number": trial_number,
                "heartbeat_interval": 1,
            },
        }
    )


def test_no_callback_outside_a_sweep():
    assert build_trial_callback(_cfg(None)) is None
    raise_if_pruned(None)
    raise_if_pruned([])
    assert objective_metric_key("validation.overall_f1") == "eval_overall_f1"


def test_callback_reports_each_evaluation_and_stops_a_pruned_trial(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    median = PrunerConf("median", median={"n_startup_trials": 1, "n_warmup_steps": 0})
    study.set_user_attr("pruner", dataclasses.asdict(median))  # as the sweeper stores it
    best = study.ask()
    for step in (100, 200):  # hundredths of an epoch: epochs 1 and 2
        best.report(0.9, step)
    study.tell(best, 0.9)
    good, bad = study.ask(), study.ask()  # what the sweeper does before launching the trials

    # A trial better than the median goes on (the pruner compares the best value so far).
    callback = build_trial_callback(_cfg(storage, good.number))
    control = TrainerControl()
    callback.on_evaluate(
        None, TrainerState(global_step=10, epoch=1.0), control, metrics={"eval_overall_f1": 0.95}
    )
    callback.on_evaluate(
        None, TrainerState(global_step=20, epoch=2.0), control, metrics={"eval_overall_f1": 0.5}
    )
    assert not control.should_training_stop and not callback.pruned
    callback.on_train_end(None, TrainerState(global_step=20, epoch=2.0), control)
    raise_if_pruned([callback])  # does not raise

    # A worse one stops at its first evaluation and ends as TrialPruned.
    callback = build_trial_callback(_cfg(storage, bad.number))
    control = TrainerControl()
    state = TrainerState(global_step=10, epoch=1.0)
    callback.on_evaluate(None, state, control, metrics={"eval_overall_f1": 0.1, "eval_loss": 1.0})
    assert control.should_training_stop and callback.pruned
    callback.on_train_end(None, state, control)
    with pytest.raises(optuna.TrialPruned):
        raise_if_pruned([callback])

    frozen = study.trials
    # Reported in hundredths of an epoch; steps_trained counts optimizer steps.
    assert frozen[good.number].intermediate_values == {100: 0.95, 200: 0.5}
    assert frozen[good.number].user_attrs["steps_trained"] == 20
    assert frozen[bad.number].intermediate_values == {100: 0.1}
    assert frozen[bad.number].user_attrs["steps_trained"] == 10
    assert frozen[bad.number].user_attrs["pruned_at_step"] == 100
