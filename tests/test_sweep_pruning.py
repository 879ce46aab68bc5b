"""Pruning compares like with like: intermediate values keyed in epochs, and a trial judged only against
trials of the same or a longer schedule (ner_experiments.sweeping.pruning)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from hydra_plugins.ner_optuna_sweeper.config import PrunerConf
from ner_experiments.sweeping.pruning import SameOrLongerSchedulePruner, epoch_step
from ner_experiments.sweeping.study import build_pruner
from ner_experiments.train.eval_schedule import evaluation_index
from tests.helpers import TRAIN_PY, run_script
from tests.sweep_helpers import SWEEP_ENV

EPOCHS = "trainer.num_train_epochs"
DISTRIBUTIONS = {EPOCHS: IntDistribution(2, 10), "trainer.learning_rate": FloatDistribution(1e-5, 1e-4)}


def _finished(
    epochs: int, curve: list[float], state: TrialState = TrialState.COMPLETE
) -> optuna.trial.FrozenTrial:
    """A trial of ``epochs`` epochs that reported ``curve`` once per epoch (steps 100, 200, ...), with the
    rung values successive halving (min_resource=100, reduction_factor=2) records at steps 100, 200, 400."""
    values = {100 * (i + 1): v for i, v in enumerate(curve)}
    return create_trial(
        system_attrs={f"completed_rung_{r}": values[s] for r, s in enumerate((100, 200, 400)) if s in values},
        params={EPOCHS: epochs, "trainer.learning_rate": 3e-5},
        distributions=DISTRIBUTIONS,
        value=max(curve) if state == TrialState.COMPLETE else None,
        intermediate_values=values,
        state=state,
    )


def _judge(study: optuna.Study, epochs: int, curve: list[float]) -> bool:
    """Would a running ``epochs``-epoch trial that reported ``curve`` be pruned at its last report?"""
    study.enqueue_trial({EPOCHS: epochs, "trainer.learning_rate": 3e-5})
    trial = study.ask(DISTRIBUTIONS)
    for i, value in enumerate(curve):
        trial.report(value, 100 * (i + 1))
    pruned = trial.should_prune()
    study.tell(trial, state=TrialState.PRUNED if pruned else TrialState.FAIL)  # out of later comparisons
    return pruned


@pytest.mark.parametrize(
    "inner",
    [
        lambda: optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
        lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=100, reduction_factor=2),
    ],
    ids=["median", "successive_halving"],
)
def test_a_long_schedule_is_never_compared_with_shorter_ones(inner):
    # Two 3-epoch trials end high: at their last epoch their learning rate has decayed to zero.
    # A 10-epoch trial at epoch 3 scores less, its learning rate still high: Optuna's own pruner cuts it.
    plain = optuna.create_study(direction="maximize", pruner=inner())
    for _ in range(2):
        plain.add_trial(_finished(3, [0.30, 0.50, 0.60]))
    assert _judge(plain, 10, [0.20, 0.35, 0.45])

    # Wrapped, the same pruner sees no trial with a schedule as long: the 10-epoch trial goes on.
    study = optuna.create_study(direction="maximize", pruner=SameOrLongerSchedulePruner(inner()))
    for _ in range(2):
        study.add_trial(_finished(3, [0.30, 0.50, 0.60]))
    assert not _judge(study, 10, [0.20, 0.35, 0.45])

    # A 10-epoch trial that was better at every epoch is a fair comparison: now the same curve is pruned.
    study.add_trial(_finished(10, [0.40, 0.55, 0.65, 0.70]))
    assert _judge(study, 10, [0.20, 0.35, 0.45])

    # A short trial is still judged against the longer ones (whose learning rate is higher: in its favour).
    assert _judge(study, 3, [0.10, 0.20, 0.25])


def test_the_wrapper_is_the_default_and_can_be_turned_off():
    assert isinstance(build_pruner(PrunerConf("median")), SameOrLongerSchedulePruner)
    assert isinstance(build_pruner(PrunerConf("successive_halving")), SameOrLongerSchedulePruner)
    plain = build_pruner(PrunerConf("median", same_or_longer_schedule=False))
    assert isinstance(plain, optuna.pruners.MedianPruner)
    assert isinstance(build_pruner(PrunerConf("none")), optuna.pruners.NopPruner)


def test_steps_are_hundredths_of_an_epoch_whatever_the_batch_size():
    # 600 sentences: 38 steps per epoch at batch 16, 75 at batch 8; evaluations at half and end of epochs.
    for steps_per_epoch in (38, 75):
        evaluated = [
            epoch_step(evaluation_index(step / steps_per_epoch, 2), 2)
            for step in range(1, 2 * steps_per_epoch + 1)
            if evaluation_index(step / steps_per_epoch, 2) > evaluation_index((step - 1) / steps_per_epoch, 2)
        ]
        assert evaluated == [50, 100, 150, 200]
    assert [epoch_step(i, 3) for i in (1, 2, 3, 4)] == [33, 67, 100, 133]


def test_trials_with_other_batch_sizes_report_at_the_same_epochs(tmp_path):
    """train.py sweep, two evaluations per epoch, batch 8 and 16: both trials report at 0.5 and 1.0 epoch
    (steps 50 and 100) after different numbers of optimizer steps, and keep only their best model."""
    proc = run_script(
        TRAIN_PY, "-m", "hydra/sweeper=ner_optuna", "hydra.sweeper.study_name=batch", "experiment=quickstart",
        f"paths.output_dir={tmp_path}", "dataset.max_train_samples=64", "dataset.max_eval_samples=32",
        "hydra.sweeper.plots=false", "trainer.per_device_train_batch_size=choice(8, 16)",
        "hydra.sweeper.sampler.name=grid", "trainer.num_train_epochs=1", "trainer.evals_per_epoch=2",
        "hydra.sweeper.pruner.name=none",
        env=SWEEP_ENV, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="batch", storage=f"sqlite:///{tmp_path / 'optuna' / 'batch.db'}")
    trials = {t.params["trainer.per_device_train_batch_size"]: t for t in study.trials}
    assert sorted(trials) == [8, 16]
    for batch_size, trial in trials.items():
        assert list(trial.intermediate_values) == [50, 100]  # two evaluations in the one epoch
        assert trial.user_attrs["steps_trained"] == 64 // batch_size
        (checkpoint,) = (Path(trial.user_attrs["output_dir"]) / "checkpoints").glob("checkpoint-*")
        assert (checkpoint / "model.safetensors").is_file()
        assert not (checkpoint / "optimizer.pt").exists()  # a trial is never resumed: the model only
