"""The search space of a sweep, in hydra-optuna-sweeper's ``params`` syntax (see docs/sweeps.md).

As there, ``range(a, b)`` includes ``b`` and ``interval(a, b)`` samples integers when both bounds are
written as integers. Hydra's own override parser reads the expressions.
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
_INTERVAL_INT_ARGS = re.compile(r"interval\(\s*[+-]?\d+\s*,\s*[+-]?\d+\s*\)")


class SweepConfigError(ConfigError):
    """A sweep setting that cannot work; the message names the key and a valid value."""


def one_line(error: Any) -> str:
    """The first non-blank line of an error's message (its type name when it has none)."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
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
        grid = {}
        for name, d in self.distributions.items():
            if isinstance(d, CategoricalDistribution):
                grid[name] = list(d.choices)
            elif isinstance(d, IntDistribution) and not d.log:
                grid[name] = list(range(d.low, d.high + 1, d.step))
            elif isinstance(d, FloatDistribution) and d.step is not None:
                n = round((d.high - d.low) / d.step)
                grid[name] = [round(d.low + i * d.step, 12) for i in range(n + 1)]
            else:
                raise SweepConfigError(
                    f"hydra.sweeper.params.{name}: the grid sampler needs a discrete parameter: use choice(...) "
                    "or range(...) instead of interval(...), or another sampler (e.g. sampler.name=tpe)"
                )
        return grid


def _bounds(name: str, low: Any, high: Any, log: bool, what: str) -> tuple[float, float]:
    """``low`` and ``high``, checked (Hydra's parser already checked that they are numbers)."""
    if low > high:
        raise SweepConfigError(
            f"hydra.sweeper.params.{name}: {what} has low {low} > high {high}: write the smaller bound first"
        )
    if log and low <= 0:
        raise SweepConfigError(
            f"hydra.sweeper.params.{name}: a log scale needs low > 0, got {low}, e.g. tag(log, interval(1e-5, 1e-4))"
        )
    return low, high


def _distribution(name: str, override: Override, raw_value: str) -> BaseDistribution:
    value = override.value()
    if isinstance(value, ChoiceSweep):
        choices = override.sweep_iterator(transformer=Transformer.encode)  # a list or dict comes as its text
        return CategoricalDistribution(list(choices))  # type: ignore[arg-type]
    if isinstance(value, RangeSweep):
        low, high = _bounds(name, value.start, value.stop, False, f"range({raw_value.partition('(')[2]}")
        step = 1 if value.step is None else value.step
        if any(isinstance(v, float) for v in (low, high, step)):
            return FloatDistribution(low, high, step=step)
        return IntDistribution(int(low), int(high), step=int(step))
    if isinstance(value, IntervalSweep):
        if set(value.tags) - {"log"}:
            raise SweepConfigError(
                f"hydra.sweeper.params.{name}: unknown tag {sorted(value.tags)}: only tag(log, interval(...)) works"
            )
        log = "log" in value.tags
        low, high = _bounds(name, value.start, value.end, log, "interval")
        # Hydra's parser turns interval bounds into floats; the text says whether they were integers.
        if _INTERVAL_INT_ARGS.search(raw_value):
            return IntDistribution(int(low), int(high), log=log)
        return FloatDistribution(low, high, log=log)
    raise SweepConfigError(
        f"hydra.sweeper.params.{name}={raw_value} is not a supported search space: {SYNTAX_HELP}"
    )


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{trainer: {learning_rate: x}}`` -> ``{"trainer.learning_rate": x}``.

    A dotted key given on the command line (``++hydra.sweeper.params.trainer.learning_rate=...``)
    arrives nested; in YAML it is usually written flat. Both mean the same parameter.
    """
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _parse_override(parser: OverridesParser, line: str) -> Override:
    key, _, raw_value = line.partition("=")
    try:
        (override,) = parser.parse_overrides([line])
        return override
    except HydraException as e:
        detail = str(e)
        if "empty choice" in detail:
            reason = "choice() is empty: list at least one value, e.g. choice(8, 16)"
            raise SweepConfigError(f"hydra.sweeper.params.{key}: {reason}") from None
        cause = one_line(detail.split("\n", 1)[-1])  # the line after Hydra's "Error parsing override"
        problem = (
            "uses an unknown function" if "Unknown function" in detail else f"cannot be parsed ({cause})"
        )
        raise SweepConfigError(f"hydra.sweeper.params.{key}={raw_value} {problem}: {SYNTAX_HELP}") from None


def parse_search_space(
    params: Mapping[str, Any] | None, extra_overrides: list[str] | None = None
) -> SearchSpace:
    """Parse ``hydra.sweeper.params`` (plus sweep-style command-line overrides) into a :class:`SearchSpace`.

    Raises :class:`SweepConfigError`, one line naming the key and the fix, for what cannot work.
    """
    lines = [
        f"{key}={value if isinstance(value, str) else json.dumps(value)}"
        for key, value in _flatten(params or {}).items()
    ]
    parser = OverridesParser.create()
    space = SearchSpace({}, {})
    for line in lines + list(extra_overrides or []):
        override = _parse_override(parser, line)
        name = override.get_key_element()
        space.distributions.pop(name, None)
        space.fixed.pop(name, None)
        if not override.is_sweep_override():
            space.fixed[name] = override.get_value_element_as_str()
            continue
        key = name.lstrip("+~")
        try:
            space.distributions[name] = _distribution(key, override, line.partition("=")[2])
        except ValueError as e:  # Optuna's own checks, e.g. a range step of 0
            raise SweepConfigError(f"hydra.sweeper.params.{key}: {one_line(e)}") from None
    return space


def format_param(value: Any) -> str:
    """A sampled value as a Hydra override value (floats keep full precision)."""
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value) if value is None or isinstance(value, bool) else str(value)


def trial_overrides(space: SearchSpace, params: Mapping[str, Any]) -> list[str]:
    """The Hydra overrides of one trial: the fixed values, then the sampled ones."""
    return [f"{k}={v}" for k, v in space.fixed.items()] + [
        f"{k}={format_param(v)}" for k, v in params.items()
    ]


def short_name(key: str) -> str:
    """``trainer.learning_rate`` -> ``learning_rate`` (for run names and plot labels)."""
    return key.lstrip("+~").rsplit(".", 1)[-1]
