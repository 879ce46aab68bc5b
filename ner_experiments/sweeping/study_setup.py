"""Opening a sweep: check the settings, then build the search space, sampler, pruner, storage and study.

Everything that can be wrong is checked before anything is written, so a mistake costs one line of
error and leaves no study and no folder behind.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from hydra_plugins.ner_optuna_sweeper.config import NerOptunaSweeperConf
from ner_experiments.sweeping.samplers import build_pruner, build_sampler, grid_size, pruner_to_json
from ner_experiments.sweeping.search_space import (
    SearchSpace,
    SweepConfigError,
    one_line,
    parse_search_space,
    trial_overrides,
)
from ner_experiments.sweeping.storage import (
    load_or_create_study,
    open_storage,
    redact_url,
    resolve_storage_url,
)

log = logging.getLogger(__name__)

DIRECTIONS = ("maximize", "minimize")


@dataclass
class SweepStudy:
    """The study a worker runs trials of: where it lives, what it searches, how many trials it needs."""

    study: optuna.Study
    storage: optuna.storages.RDBStorage
    storage_url: str
    space: SearchSpace
    n_trials: int


def check_settings(s: NerOptunaSweeperConf) -> None:
    """Raise :class:`SweepConfigError` for a ``hydra.sweeper`` value that cannot work."""
    if s.direction not in DIRECTIONS:
        raise SweepConfigError(
            f"hydra.sweeper.direction={s.direction!r} is not valid: use maximize or minimize"
        )
    for key in ("n_trials", "n_jobs", "max_failures"):
        if int(getattr(s, key)) < 1:
            raise SweepConfigError(f"hydra.sweeper.{key}={getattr(s, key)} must be >= 1")
    if not s.study_name:
        raise SweepConfigError(
            "hydra.sweeper.study_name is empty: give a name, e.g. hydra.sweeper.study_name=lr_sweep"
        )
    if s.heartbeat_interval is not None and s.heartbeat_interval < 1:
        raise SweepConfigError(
            "hydra.sweeper.heartbeat_interval must be >= 1 second (or null to turn it off)"
        )
    if s.heartbeat_interval and s.grace_period is not None and s.grace_period <= s.heartbeat_interval:
        raise SweepConfigError(
            f"hydra.sweeper.grace_period={s.grace_period} must be longer than heartbeat_interval="
            f"{s.heartbeat_interval}, e.g. 6 times it"
        )


def open_sweep_study(
    s: NerOptunaSweeperConf,
    arguments: Sequence[str],
    validate_batch: Callable[[list[list[str]]], Any] | None = None,
) -> SweepStudy:
    """Check ``s`` and the command line's sweep ``arguments``, then create or resume the study.

    ``validate_batch`` (the Hydra sweeper's check of a batch of overrides) is shown one example
    trial, so a key the config does not have is refused here rather than by every trial.
    """
    check_settings(s)
    space = parse_search_space(s.params, list(arguments))
    if not space.distributions:
        raise SweepConfigError(
            "the search space is empty: set hydra.sweeper.params, e.g. "
            "hydra.sweeper.params.trainer.learning_rate='tag(log, interval(1e-5, 1e-4))', or use sweep=lr_epochs"
        )
    sampler = build_sampler(s.sampler, space, s.sampler.seed)
    pruner = build_pruner(s.pruner)
    n_trials = s.n_trials
    if s.sampler.name == "grid" and grid_size(space) < n_trials:
        log.info("grid has %d points: n_trials lowered from %d", grid_size(space), n_trials)
        n_trials = grid_size(space)
    if validate_batch is not None:
        example = {name: _example_value(d) for name, d in space.distributions.items()}
        try:
            validate_batch([trial_overrides(space, example)])
        except Exception as e:
            raise SweepConfigError(f"the sweep's overrides do not fit the config: {one_line(e)}") from None
    url, is_default = resolve_storage_url(s.storage, str(s.storage_dir), str(s.study_name))
    storage = open_storage(
        url, s.heartbeat_interval, s.grace_period, s.max_retry, create_sqlite_dir=is_default
    )
    study, resumed = load_or_create_study(
        storage, str(s.study_name), s.direction, space, sampler, pruner, pruner_to_json(s.pruner)
    )
    n_existing = len(study.trials)
    if resumed and n_existing and s.sampler.seed is not None and s.sampler.name != "grid":
        # A resumed study (or a second worker) must not replay the first run's random draws.
        study.sampler = build_sampler(s.sampler, space, s.sampler.seed + n_existing)
    _log_study(s, f"resumed, {n_existing} trials so far" if resumed else "new", url, space, n_trials)
    return SweepStudy(study, storage, url, space, n_trials)


def _log_study(s: NerOptunaSweeperConf, status: str, url: str, space: SearchSpace, n_trials: int) -> None:
    log.info(
        "Optuna study %r (%s) in %s: %s, sampler=%s, pruner=%s, n_trials=%d, n_jobs=%d",
        s.study_name,
        status,
        redact_url(url),
        s.direction,
        s.sampler.name,
        s.pruner.name,
        n_trials,
        s.n_jobs,
    )
    for name, dist in space.distributions.items():
        log.info("  search %s: %s", name, dist)
    for name, value in space.fixed.items():
        log.info("  fixed  %s=%s", name, value)


def _example_value(dist: optuna.distributions.BaseDistribution) -> Any:
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return dist.choices[0]
    return dist.low  # type: ignore[attr-defined]
