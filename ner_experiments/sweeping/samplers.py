"""Optuna samplers and pruners from the sweeper's short names, with their options checked.

One explicit builder per kind rather than Hydra's ``_target_`` instantiation: the grid sampler needs
the parsed search space, a resumed study needs a shifted seed, trial processes rebuild the pruner
from what the shared study stores (a class path there would let a database row import anything),
and a misspelt option must be one line naming the valid ones.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import optuna

from hydra_plugins.ner_optuna_sweeper.config import PrunerConf, SamplerConf
from ner_experiments.sweeping.search_space import SearchSpace, SweepConfigError, one_line

SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("median", "hyperband", "successive_halving", "none")


def _construct(
    kind: str, name: str, cls: Callable[..., Any], options: Mapping[str, Any], **fixed: Any
) -> Any:
    allowed = [p for p in inspect.signature(cls).parameters if p not in fixed and p not in ("self", "kwargs")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise SweepConfigError(
            f"hydra.sweeper.{kind}.{name}.{unknown[0]} is not an option of the {name} {kind}: "
            f"use one of {', '.join(allowed) or '(none)'}"
        )
    try:
        return cls(**fixed, **dict(options))
    except (TypeError, ValueError) as e:
        raise SweepConfigError(
            f"hydra.sweeper.{kind}.{name} with options {dict(options)} is invalid: {one_line(e)}"
        ) from None


def build_sampler(conf: SamplerConf, space: SearchSpace, seed: int | None) -> optuna.samplers.BaseSampler:
    """The sampler ``conf.name`` with its options (``conf.<name>``), seeded with ``seed``."""
    name = conf.name
    if name == "tpe":
        return _construct("sampler", name, optuna.samplers.TPESampler, conf.tpe, seed=seed)
    if name == "random":
        return _construct("sampler", name, optuna.samplers.RandomSampler, conf.random, seed=seed)
    if name == "grid":
        grid = space.grid()
        return _construct(
            "sampler", name, optuna.samplers.GridSampler, conf.grid, search_space=grid, seed=seed
        )
    if name == "cmaes":
        return _construct("sampler", name, optuna.samplers.CmaEsSampler, conf.cmaes, seed=seed)
    raise SweepConfigError(
        f"hydra.sweeper.sampler.name={name!r} is not valid: use one of {', '.join(SAMPLERS)}"
    )


def build_pruner(conf: PrunerConf) -> optuna.pruners.BasePruner:
    """The pruner ``conf.name`` with its options (``conf.<name>``); ``none`` turns pruning off."""
    name = conf.name
    if name == "median":
        return _construct("pruner", name, optuna.pruners.MedianPruner, conf.median)
    if name == "hyperband":
        return _construct("pruner", name, optuna.pruners.HyperbandPruner, conf.hyperband)
    if name == "successive_halving":
        return _construct("pruner", name, optuna.pruners.SuccessiveHalvingPruner, conf.successive_halving)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise SweepConfigError(
        f"hydra.sweeper.pruner.name={name!r} is not valid: use one of {', '.join(PRUNERS)}"
    )


def pruner_to_json(conf: PrunerConf) -> dict[str, Any]:
    """The pruner settings as the study stores them for its trials (Optuna does not store pruners)."""
    return dataclasses.asdict(conf)


def pruner_from_json(stored: Mapping[str, Any] | None) -> optuna.pruners.BasePruner:
    """The pruner a study stored with :func:`pruner_to_json`; no pruning when it stored none."""
    return build_pruner(PrunerConf(**stored) if stored else PrunerConf(name="none"))


def grid_size(space: SearchSpace) -> int:
    """How many trials a full grid has."""
    size = 1
    for values in space.grid().values():
        size *= len(values)
    return size
