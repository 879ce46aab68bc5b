"""Optuna samplers and pruners by name, with their options checked against the constructor."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import optuna

from ner_experiments.sweeping.search_space import SearchSpace, SweepConfigError

SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("median", "hyperband", "successive_halving", "none")


def _construct(
    kind: str, name: str, cls: Callable[..., Any], options: Mapping[str, Any], **fixed: Any
) -> Any:
    allowed = [p for p in inspect.signature(cls).parameters if p not in fixed and p not in ("self", "kwargs")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise SweepConfigError(
            f"hydra.sweeper.{kind}.options.{unknown[0]} is not an option of the {name} {kind}: "
            f"use one of {', '.join(allowed) or '(none)'}"
        )
    try:
        return cls(**fixed, **dict(options))
    except (TypeError, ValueError) as e:
        raise SweepConfigError(
            f"hydra.sweeper.{kind} {name} with options {dict(options)} is invalid: {e}"
        ) from None


def build_sampler(
    name: str, seed: int | None, options: Mapping[str, Any] | None, space: SearchSpace
) -> optuna.samplers.BaseSampler:
    """The sampler ``name`` (tpe | random | grid | cmaes), seeded, with its extra constructor options."""
    options = dict(options or {})
    if name == "tpe":
        return _construct("sampler", name, optuna.samplers.TPESampler, options, seed=seed)
    if name == "random":
        return _construct("sampler", name, optuna.samplers.RandomSampler, options, seed=seed)
    if name == "grid":
        return _construct(
            "sampler", name, optuna.samplers.GridSampler, options, search_space=space.grid(), seed=seed
        )
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise SweepConfigError(
                "hydra.sweeper.sampler.name=cmaes needs the cmaes package: pip install cmaes"
            ) from None
        return _construct("sampler", name, optuna.samplers.CmaEsSampler, options, seed=seed)
    raise SweepConfigError(
        f"hydra.sweeper.sampler.name={name!r} is not valid: use one of {', '.join(SAMPLERS)}"
    )


def build_pruner(name: str, options: Mapping[str, Any] | None) -> optuna.pruners.BasePruner:
    """The pruner ``name`` (median | hyperband | successive_halving | none) with its constructor options."""
    options = dict(options or {})
    if name == "median":
        return _construct("pruner", name, optuna.pruners.MedianPruner, options)
    if name == "hyperband":
        return _construct("pruner", name, optuna.pruners.HyperbandPruner, options)
    if name == "successive_halving":
        return _construct("pruner", name, optuna.pruners.SuccessiveHalvingPruner, options)
    if name in ("none", None):
        if options:
            raise SweepConfigError("hydra.sweeper.pruner.options must be empty with pruner.name=none")
        return optuna.pruners.NopPruner()
    raise SweepConfigError(
        f"hydra.sweeper.pruner.name={name!r} is not valid: use one of {', '.join(PRUNERS)}"
    )


def grid_size(space: SearchSpace) -> int:
    """How many trials a full grid has."""
    size = 1
    for values in space.grid().values():
        size *= len(values)
    return size
