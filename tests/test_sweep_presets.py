"""The sweep presets compose with the real train config, and Hydra finds the ner_optuna plugin."""

from __future__ import annotations

import importlib.util

import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf

from hydra_plugins.ner_optuna_sweeper.ner_optuna_sweeper import NerOptunaSweeper
from ner_experiments.cli import CONFIG_DIR
from ner_experiments.sweeping.search_space import parse_search_space
from ner_experiments.sweeping.study import build_pruner, build_sampler

SWEEPER = "hydra_plugins.ner_optuna_sweeper.ner_optuna_sweeper.NerOptunaSweeper"


def _compose(*overrides: str):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def test_hydra_discovers_the_plugin():
    names = {f"{p.__module__}.{p.__name__}" for p in Plugins.instance().discover(Sweeper)}
    assert SWEEPER in names


def test_lr_epochs_preset_is_the_tutorials_question():
    sweeper = _compose("sweep=lr_epochs").hydra.sweeper
    assert sweeper._target_ == SWEEPER
    assert sweeper.study_name == "lr_epochs-mbert_cased-wikiann_bn"
    assert sweeper.direction == "maximize" and sweeper.pruner.name == "successive_halving"
    assert sweeper.pruner.same_or_longer_schedule  # a long schedule is never judged against shorter ones
    assert sweeper.sampler.name == "tpe" and sweeper.sampler.seed == 42
    space = parse_search_space(dict(sweeper.params))
    lr, epochs = space.distributions["trainer.learning_rate"], space.distributions["trainer.num_train_epochs"]
    assert (lr.low, lr.high, lr.log) == (1e-5, 1e-4, True)
    assert (epochs.low, epochs.high) == (3, 10)
    assert (sweeper.confirm.top_k, sweeper.confirm.seeds) == (3, 2)  # top 3 x 2 more seeds, ranked by mean


def test_quick_preset_fits_the_quickstart():
    cfg = _compose("sweep=quick", "experiment=quickstart")
    assert cfg.hydra.sweeper.study_name == "quick-tiny-sample_bn"
    assert cfg.hydra.sweeper.n_trials <= 8
    assert (cfg.hydra.sweeper.confirm.top_k, cfg.hydra.sweeper.confirm.seeds) == (2, 2)
    assert cfg.logger.backend == "none" and cfg.trainer.use_cpu


def test_launcher_presets():
    cfg = _compose("sweep=lr_epochs", "hydra/launcher=local_parallel", "hydra.sweeper.n_jobs=3")
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")
    assert cfg.hydra.launcher.n_jobs == 3
    if importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None:
        pytest.skip("hydra-submitit-launcher is not installed (pip install -e '.[slurm]')")
    cfg = _compose("sweep=lr_epochs", "hydra/launcher=slurm_gpu", "hydra.sweeper.n_jobs=8")
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.gpus_per_node == 1 and cfg.hydra.launcher.array_parallelism == 8


@pytest.mark.parametrize(
    ("overrides", "pruner", "sampler"),
    [
        ([], optuna.pruners.SuccessiveHalvingPruner, optuna.samplers.TPESampler),
        (["hydra.sweeper.pruner.name=median"], optuna.pruners.MedianPruner, optuna.samplers.TPESampler),
        (["hydra.sweeper.pruner.name=none"], optuna.pruners.NopPruner, optuna.samplers.TPESampler),
        (["hydra.sweeper.pruner.name=hyperband"], optuna.pruners.HyperbandPruner, optuna.samplers.TPESampler),
        (
            [
                "hydra.sweeper.pruner.name=successive_halving",
                "++hydra.sweeper.pruner.successive_halving.min_resource=2",
            ],
            optuna.pruners.SuccessiveHalvingPruner,
            optuna.samplers.TPESampler,
        ),
        (
            ["hydra.sweeper.sampler.name=random"],
            optuna.pruners.SuccessiveHalvingPruner,
            optuna.samplers.RandomSampler,
        ),
    ],
)
def test_preset_pruner_and_sampler_switch_by_name_on_the_command_line(overrides, pruner, sampler):
    # The preset's own pruner and tpe options stay in the config and are simply not used by the others.
    node = _compose("sweep=lr_epochs", *overrides).hydra.sweeper
    settings = NerOptunaSweeper(**OmegaConf.to_container(node, resolve=True)).settings
    assert settings.pruner.successive_halving["reduction_factor"] == 3
    built = build_pruner(settings.pruner)
    assert isinstance(getattr(built, "pruner", built), pruner)  # inside the same-or-longer-schedule filter
    space = parse_search_space(settings.params)
    assert isinstance(build_sampler(settings.sampler, space, settings.sampler.seed), sampler)
