"""The search-space syntax (hydra-optuna-sweeper compatible), samplers, pruners and study checks."""

from __future__ import annotations

import dataclasses

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hydra_plugins.ner_optuna_sweeper.config import PrunerConf, SamplerConf
from ner_experiments.errors import ConfigError
from ner_experiments.sweeping.search_space import SweepConfigError, parse_search_space, trial_overrides
from ner_experiments.sweeping.study import (
    build_pruner,
    build_sampler,
    grid_size,
    load_or_create_study,
    open_storage,
    pruner_from_json,
    redact_url,
)


def test_syntax_of_hydra_optuna_sweeper_is_parsed_with_int_and_float_inferred():
    space = parse_search_space(
        {
            "trainer.learning_rate": "tag(log, interval(1e-5, 1e-4))",
            "trainer.num_train_epochs": "range(3, 10)",
            "trainer.per_device_train_batch_size": "choice(8, 16, 32)",
            "trainer.warmup_ratio": "interval(0.0, 0.2)",
            "model.window_stride": "interval(16, 128)",
            "trainer.max_grad_norm": "range(0.5, 2.0, 0.5)",
            "trainer.weight_decay": 0.01,
        }
    )
    d = space.distributions
    assert d["trainer.learning_rate"] == FloatDistribution(1e-5, 1e-4, log=True)
    assert d["trainer.num_train_epochs"] == IntDistribution(
        3, 10
    )  # both ends included, as hydra-optuna-sweeper
    assert d["trainer.per_device_train_batch_size"] == CategoricalDistribution([8, 16, 32])
    assert d["trainer.warmup_ratio"] == FloatDistribution(0.0, 0.2)
    assert d["model.window_stride"] == IntDistribution(16, 128)
    assert d["trainer.max_grad_norm"] == FloatDistribution(0.5, 2.0, step=0.5)
    assert space.fixed == {"trainer.weight_decay": "0.01"}
    overrides = trial_overrides(space, {"trainer.learning_rate": 3e-5, "trainer.num_train_epochs": 4})
    assert overrides == [
        "trainer.weight_decay=0.01",
        "trainer.learning_rate=3e-05",
        "trainer.num_train_epochs=4",
    ]


def test_command_line_overrides_extend_and_replace_params():
    space = parse_search_space(
        {"trainer": {"learning_rate": "interval(1e-5, 1e-4)"}, "trainer.num_train_epochs": "range(3, 10)"},
        ["trainer.num_train_epochs=5", "seed=choice(1,2)"],
    )
    assert set(space.distributions) == {"trainer.learning_rate", "seed"}
    assert space.fixed == {"trainer.num_train_epochs": "5"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("foo(1, 2)", "unknown function"),
        ("choice()", "choice() is empty"),
        ("interval(1e-4, 1e-5)", "low 0.0001 > high 1e-05"),
        ("range(10, 3)", "low 10 > high 3"),
        ("tag(log, interval(0, 1))", "log scale needs low > 0"),
        ("interval(1, 2", "cannot be parsed"),
    ],
)
def test_bad_search_space_is_one_clear_config_error(value, message):
    with pytest.raises(ConfigError) as err:
        parse_search_space({"trainer.learning_rate": value})
    assert message in str(err.value)
    assert "trainer.learning_rate" in str(err.value)
    assert "\n" not in str(err.value)


def test_samplers_and_pruners_by_name_and_unknown_names():
    space = parse_search_space({"x": "choice(1, 2)", "y": "range(1, 3)"})
    assert isinstance(build_sampler(SamplerConf("tpe"), space, 1), optuna.samplers.TPESampler)
    assert isinstance(build_sampler(SamplerConf("random"), space, 1), optuna.samplers.RandomSampler)
    assert isinstance(build_sampler(SamplerConf("grid"), space, 1), optuna.samplers.GridSampler)
    assert isinstance(build_sampler(SamplerConf("cmaes"), space, 1), optuna.samplers.CmaEsSampler)
    assert grid_size(space) == 6
    median = build_pruner(PrunerConf("median", median={"n_startup_trials": 2}))
    assert isinstance(median.pruner, optuna.pruners.MedianPruner)  # inside the same-or-longer-schedule filter
    assert isinstance(build_pruner(PrunerConf("hyperband")), optuna.pruners.HyperbandPruner)  # not filtered
    halving = build_pruner(PrunerConf("successive_halving"))
    assert isinstance(halving.pruner, optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(build_pruner(PrunerConf("none")), optuna.pruners.NopPruner)
    with pytest.raises(SweepConfigError, match="sampler.name='anneal' is not valid: use one of tpe"):
        build_sampler(SamplerConf("anneal"), space, 1)
    with pytest.raises(SweepConfigError, match="pruner.name='patient' is not valid: use one of median"):
        build_pruner(PrunerConf("patient"))
    with pytest.raises(SweepConfigError, match="grid sampler needs a discrete parameter"):
        build_sampler(SamplerConf("grid"), parse_search_space({"x": "interval(0.0, 1.0)"}), 1)


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        (
            PrunerConf("median", median={"n_warmup": 1}),
            "hydra.sweeper.pruner.median.n_warmup is not an option",
        ),
        (PrunerConf("median", median={"n_startup_trials": -1}), "hydra.sweeper.pruner.median with options"),
        (
            PrunerConf("successive_halving", successive_halving={"reduction_factor": 1}),
            "must be `reduction_factor",
        ),
        (SamplerConf("tpe", tpe={"n_startup": 1}), "hydra.sweeper.sampler.tpe.n_startup is not an option"),
        (
            SamplerConf("cmaes", cmaes={"n_startup": 1}),
            "hydra.sweeper.sampler.cmaes.n_startup is not an option",
        ),
    ],
)
def test_bad_sampler_or_pruner_options_are_one_clear_line(conf, message):
    space = parse_search_space({"x": "interval(0.0, 1.0)"})
    with pytest.raises(SweepConfigError) as err:
        build_sampler(conf, space, 1) if isinstance(conf, SamplerConf) else build_pruner(conf)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_only_the_chosen_pruners_options_are_used_and_the_study_stores_them():
    conf = PrunerConf("none", median={"n_startup_trials": 3})  # a preset's median options, pruning off
    assert isinstance(build_pruner(conf), optuna.pruners.NopPruner)
    conf = PrunerConf(
        "successive_halving", median={"n_startup_trials": 3}, successive_halving={"min_resource": 2}
    )
    stored = dataclasses.asdict(conf)  # as the sweeper stores it in the study
    assert stored["name"] == "successive_halving" and stored["successive_halving"] == {"min_resource": 2}
    rebuilt = pruner_from_json(stored)
    assert (
        isinstance(rebuilt.pruner, optuna.pruners.SuccessiveHalvingPruner)
        and rebuilt.pruner._min_resource == 2
    )
    assert isinstance(pruner_from_json(None), optuna.pruners.NopPruner)


def test_study_reused_with_other_direction_or_space_is_refused(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    space = parse_search_space({"x": "interval(0.0, 1.0)"})
    pruner = PrunerConf("none")
    study, resumed = load_or_create_study(storage, "s", "maximize", space, pruner)
    assert not resumed
    _, resumed = load_or_create_study(storage, "s", "maximize", space, pruner)
    assert resumed
    with pytest.raises(
        SweepConfigError,
        match="direction=maximize, not minimize: pick a new name with hydra.sweeper.study_name",
    ):
        load_or_create_study(storage, "s", "minimize", space, pruner)
    other = parse_search_space({"x": "interval(0.0, 2.0)"})
    with pytest.raises(SweepConfigError, match=r"different search space \(changed: x\): pick a new name"):
        load_or_create_study(storage, "s", "maximize", other, pruner)


def test_unreachable_storage_says_so_and_writes_nothing(tmp_path):
    with pytest.raises(SweepConfigError, match="cannot open the Optuna storage .*Connection refused"):
        open_storage("postgresql+psycopg://user:secret@127.0.0.1:1/optuna")
    missing = tmp_path / "no" / "such" / "dir" / "s.db"
    with pytest.raises(SweepConfigError, match="does not exist"):
        open_storage(f"sqlite:///{missing}")
    assert not (tmp_path / "no").exists()
    assert redact_url("postgresql+psycopg://user:secret@host/db") == "postgresql+psycopg://user:***@host/db"
