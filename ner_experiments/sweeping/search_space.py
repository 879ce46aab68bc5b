"""The search space of a sweep, written in hydra-optuna-sweeper's ``params`` syntax.

``hydra.sweeper.params`` maps a config key to either a fixed value (applied to every trial) or a
distribution::

    trainer.learning_rate: tag(log, interval(1e-5, 1e-4))   # log-uniform float
    trainer.num_train_epochs: range(3, 10)                   # integers 3..10, both ends included
    trainer.per_device_train_batch_size: choice(8, 16, 32)   # categorical
    trainer.warmup_ratio: interval(0.0, 0.2)                 # uniform float
    trainer.weight_decay: 0.01                               # fixed

As in hydra-optuna-sweeper, ``range(a, b)`` includes ``b`` and ``interval(a, b)`` samples integers
when both bounds are written as integers. The expressions are parsed by Hydra's own override parser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from hydra.errors import HydraException
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)

from ner_experiments.errors import ConfigError

SYNTAX_HELP = (
    "use choice(a, b, ...), range(low, high[, step]), interval(low, high) or tag(log, interval(low, high))"
)
_INT_LITERAL = re.compile(r"^[+-]?\d+$")
_INTERVAL_ARGS = re.compile(r"interval\(\s*([^,()]+?)\s*,\s*([^,()]+?)\s*\)")


class SweepConfigError(ConfigError):
    """A sweep setting that cannot work; the message names the key and a valid value."""


def one_line(error: Any) -> str:
    """The first non-blank line of an error's message (its type name when it has none)."""
    lines = [ln.strip() for ln in str(error).strip().splitlines() if ln.strip()]
    return lines[0] if lines else type(error).__name__


@dataclass
class SearchSpace:
    """What each trial samples (``distributions``) and what every trial gets as is (``fixed``)."""

    distributions: dict[str, BaseDistribution]
    fixed: dict[str, str]

    def to_json(self) -> dict[str, str]:
        """A comparable, storable form: parameter name -> Optuna's JSON of its distribution."""
        return {name: distribution_to_json(d) for name, d in sorted(self.distributions.items())}

    def grid(self) -> dict[str, list[Any]]:
        """Every value of every parameter, for the grid sampler (discrete distributions only)."""
        return {name: grid_values(name, d) for name, d in self.distributions.items()}


def grid_values(name: str, dist: BaseDistribution) -> list[Any]:
    """The values the grid sampler visits for one parameter."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution) and not dist.log:
        return list(range(dist.low, dist.high + 1, dist.step))
    if isinstance(dist, FloatDistribution) and dist.step is not None:
        n = int(round((dist.high - dist.low) / dist.step))
        return [round(dist.low + i * dist.step, 12) for i in range(n + 1)]
    raise SweepConfigError(
        f"hydra.sweeper.params.{name}: the grid sampler needs a discrete parameter: "
        "use choice(...) or range(...) instead of interval(...), or another sampler (e.g. sampler.name=tpe)"
    )


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SweepConfigError(f"hydra.sweeper.params.{name}: bounds must be numbers, got {value!r}")
    return value


def _check_bounds(name: str, low: float, high: float, log: bool, what: str) -> None:
    if low > high:
        raise SweepConfigError(
            f"hydra.sweeper.params.{name}: {what} has low {low} > high {high}: write the smaller bound first"
        )
    if log and low <= 0:
        raise SweepConfigError(
            f"hydra.sweeper.params.{name}: a log scale needs low > 0, got {low}, e.g. tag(log, interval(1e-5, 1e-4))"
        )


def _distribution(override: Override, raw_value: str) -> BaseDistribution:
    name = override.get_key_element().lstrip("+~")
    value = override.value()
    if isinstance(value, ChoiceSweep):
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        for choice in choices:
            if not isinstance(choice, (str, int, float, bool, type(None))):
                raise SweepConfigError(
                    f"hydra.sweeper.params.{name}: choice() values must be numbers, strings, booleans or null, got {choice!r}"
                )
        return CategoricalDistribution(choices)  # type: ignore[arg-type]  # checked above
    if isinstance(value, RangeSweep):
        if value.shuffle:
            return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))  # type: ignore[arg-type]
        start, stop = _number(name, value.start), _number(name, value.stop)
        step = _number(name, value.step if value.step is not None else 1)
        _check_bounds(name, start, stop, False, f"range({raw_value.partition('(')[2]}")
        if step <= 0:
            raise SweepConfigError(f"hydra.sweeper.params.{name}: range step must be > 0, got {step}")
        if any(isinstance(v, float) for v in (start, stop, step)):
            return FloatDistribution(float(start), float(stop), step=float(step))
        return IntDistribution(int(start), int(stop), step=int(step))
    if isinstance(value, IntervalSweep):
        log = "log" in value.tags
        unknown_tags = set(value.tags) - {"log"}
        if unknown_tags:
            raise SweepConfigError(
                f"hydra.sweeper.params.{name}: unknown tag {sorted(unknown_tags)}: only tag(log, interval(...)) is supported"
            )
        start, end = _number(name, value.start), _number(name, value.end)
        _check_bounds(name, start, end, log, "interval")
        # Hydra's parser turns interval bounds into floats; the text says whether they were integers.
        match = _INTERVAL_ARGS.search(raw_value)
        if match and all(_INT_LITERAL.match(b) for b in match.groups()):
            return IntDistribution(int(start), int(end), log=log)
        return FloatDistribution(float(start), float(end), log=log)
    raise SweepConfigError(
        f"hydra.sweeper.params.{name}={raw_value} is not a supported search space: {SYNTAX_HELP}"
    )


def _format_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, (list, dict, bool)) or value is None else str(value)


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{trainer: {learning_rate: x}}`` -> ``{"trainer.learning_rate": x}``.

    A dotted key given on the command line (``++hydra.sweeper.params.trainer.learning_rate=...``)
    arrives nested; in YAML it is usually written flat. Both mean the same parameter.
    """
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat.pop(name, None)
            flat[name] = value
    return flat


def parse_search_space(
    params: Mapping[str, Any] | None, extra_overrides: list[str] | None = None
) -> SearchSpace:
    """Parse ``hydra.sweeper.params`` (plus sweep-style command-line overrides) into a :class:`SearchSpace`.

    Raises :class:`SweepConfigError` with one line naming the key and the fix for unknown syntax, an
    empty ``choice()``, a low bound above the high one or a log scale starting at 0.
    """
    lines = [f"{key}={_format_value(value)}" for key, value in _flatten(params or {}).items()]
    lines += list(extra_overrides or [])
    parser = OverridesParser.create()
    distributions: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for line in lines:
        key, _, raw_value = line.partition("=")
        try:
            (override,) = parser.parse_overrides([line])
        except HydraException as e:
            detail = str(e)
            if "empty choice" in detail:
                raise SweepConfigError(
                    f"hydra.sweeper.params.{key}: choice() is empty: list at least one value, e.g. choice(8, 16)"
                ) from None
            if "Unknown function" in detail:
                raise SweepConfigError(
                    f"hydra.sweeper.params.{key}={raw_value} uses an unknown function: {SYNTAX_HELP}"
                ) from None
            first = next((ln for ln in detail.splitlines()[1:] if ln.strip()), detail.splitlines()[0])
            raise SweepConfigError(
                f"hydra.sweeper.params.{key}={raw_value} cannot be parsed ({first.strip()}): {SYNTAX_HELP}"
            ) from None
        name = override.get_key_element()
        if override.is_sweep_override():
            distributions[name] = _distribution(override, raw_value)
            fixed.pop(name, None)
        else:
            fixed[name] = override.get_value_element_as_str()
            distributions.pop(name, None)
    return SearchSpace(distributions=distributions, fixed=fixed)


def format_param(value: Any) -> str:
    """A sampled value as a Hydra override value (floats keep full precision)."""
    if isinstance(value, float):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def trial_overrides(space: SearchSpace, params: Mapping[str, Any]) -> list[str]:
    """The Hydra overrides of one trial: the fixed values, then the sampled ones."""
    return [f"{k}={v}" for k, v in space.fixed.items()] + [
        f"{k}={format_param(v)}" for k, v in params.items()
    ]


def short_name(key: str) -> str:
    """``trainer.learning_rate`` -> ``learning_rate`` (for run names and plot labels)."""
    return key.lstrip("+~").rsplit(".", 1)[-1]
