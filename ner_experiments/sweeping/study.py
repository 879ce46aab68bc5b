"""Opening a sweep's study: settings checked, sampler and pruner built, storage opened, study created or resumed.

Everything that can be wrong is checked before anything is written, so a mistake costs one line of
error and leaves no study and no folder behind. The storage URL decides embedded sqlite or a shared
server; every process of a sweep (the sweeper, each trial, other workers) opens it with :func:`open_storage`
and beats the heartbeat of its running trials (:class:`Heartbeats`).
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import logging
import math
import os
import random
import re
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from hydra_plugins.ner_optuna_sweeper.config import NerOptunaSweeperConf, PrunerConf, SamplerConf
from ner_experiments.sweeping.confirmation import CONFIRM_OF
from ner_experiments.sweeping.pruning import wrap_pruner
from ner_experiments.sweeping.search_space import (
    SearchSpace,
    SweepConfigError,
    one_line,
    parse_search_space,
    trial_overrides,
)

log = logging.getLogger(__name__)

# Explicit tables rather than ``_target_``: trial processes rebuild the pruner from what the shared
# study stores, where a class path would let a database row import anything.
SAMPLERS = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "grid": optuna.samplers.GridSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
}
PRUNERS = {
    "median": optuna.pruners.MedianPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "none": optuna.pruners.NopPruner,
}
# The storage URL from the environment: how a password stays out of every config, and how the sweeper
# hands the URL to its trials (their config says optuna.storage=${oc.env:NER_OPTUNA_STORAGE}).
STORAGE_ENV = "NER_OPTUNA_STORAGE"
STUDY_SPEC_ATTR = "ner_sweep"  # the direction and search space a later run of the study must agree with


def _construct(kind: str, conf: SamplerConf | PrunerConf, classes: dict[str, Any], **fixed: Any) -> Any:
    """``classes[conf.name]`` with the options under ``conf.<name>``; a misspelt option names the valid ones."""
    name = conf.name
    if name not in classes:
        raise SweepConfigError(
            f"hydra.sweeper.{kind}.name={name!r} is not valid: use one of {', '.join(classes)}"
        )
    options = dict(getattr(conf, name, {}))
    allowed = [p for p in inspect.signature(classes[name]).parameters if p not in fixed and p != "kwargs"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise SweepConfigError(
            f"hydra.sweeper.{kind}.{name}.{unknown[0]} is not an option of the {name} {kind}: "
            f"use one of {', '.join(allowed) or '(none)'}"
        )
    try:
        return classes[name](**fixed, **options)
    except (TypeError, ValueError) as e:
        raise SweepConfigError(
            f"hydra.sweeper.{kind}.{name} with options {options} is invalid: {one_line(e)}"
        ) from None


def build_sampler(conf: SamplerConf, space: SearchSpace, seed: int | None) -> optuna.samplers.BaseSampler:
    """The sampler ``conf.name`` with its options (``conf.<name>``), seeded with ``seed``."""
    grid = {"search_space": space.grid()} if conf.name == "grid" else {}
    return _construct("sampler", conf, SAMPLERS, seed=seed, **grid)


def build_pruner(conf: PrunerConf) -> optuna.pruners.BasePruner:
    """The pruner ``conf.name`` with its options (``conf.<name>``); ``none`` turns pruning off."""
    return wrap_pruner(_construct("pruner", conf, PRUNERS), conf.same_or_longer_schedule)


def pruner_from_json(stored: dict[str, Any] | None) -> optuna.pruners.BasePruner:
    """The pruner the study stored for its trials (Optuna stores none); no pruning when it stored none."""
    return build_pruner(PrunerConf(**stored) if stored else PrunerConf(name="none"))


def grid_size(space: SearchSpace) -> int:
    """How many trials a full grid has."""
    return math.prod(len(values) for values in space.grid().values())


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (for logs and error messages)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def storage_url(s: NerOptunaSweeperConf) -> str:
    """``hydra.sweeper.storage``, else ``$NER_OPTUNA_STORAGE``, else the sqlite file ``<storage_dir>/<study_name>.db``.

    A sqlite path is made absolute: trials may run in another process or working directory.
    """
    url = (
        s.storage
        or os.environ.get(STORAGE_ENV)
        or f"sqlite:///{s.storage_dir}/{re.sub(r'[^A-Za-z0-9._=-]+', '_', str(s.study_name))}.db"
    )
    if url.startswith("sqlite:///"):
        url = "sqlite:///" + str(Path(url.removeprefix("sqlite:///")).resolve())
    return url


def _check_sqlite_folder(url: str, create: bool) -> None:
    if url.startswith("sqlite:///"):
        folder = Path(url.removeprefix("sqlite:///")).parent
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        elif not folder.is_dir():
            raise SweepConfigError(
                f"cannot open the Optuna storage {url}: folder {folder} does not exist; "
                "create it or fix hydra.sweeper.storage (nothing was written)"
            )
    elif "://" not in url:
        raise SweepConfigError(
            f"hydra.sweeper.storage={url!r} is not a database URL: use e.g. sqlite:///outputs/optuna/study.db "
            "or postgresql+psycopg://user:password@host:5432/optuna"
        )


class RetryLostSearchTrials(RetryHeartbeatStaleTrialCallback):
    """Queues a lost search trial again (same parameters); a lost confirmation run is not queued:
    the confirmation stage runs its configuration and seed again itself."""

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if CONFIRM_OF not in trial.user_attrs:
            super().__call__(study, trial)


def _never_beaten(rdb: RDBStorage, study_id: int, grace: float) -> list[int]:
    """RUNNING trials without any heartbeat that started over ``grace`` seconds ago.

    Their process died between creating the trial and its first heartbeat (a few milliseconds, but a
    kill can land there); Optuna's stale check skips trials without a heartbeat, so they would stay
    RUNNING for ever and a worker would wait for them. Read with Optuna's own table models.
    """
    from optuna.storages._rdb import models

    cutoff = datetime.datetime.now() - datetime.timedelta(seconds=grace)  # datetime_start is local time
    session = rdb.scoped_session()
    try:
        running = (
            session.query(models.TrialModel)
            .filter(models.TrialModel.study_id == study_id)
            .filter(models.TrialModel.state == optuna.trial.TrialState.RUNNING)
            .all()
        )
        return [
            t.trial_id for t in running if not t.heartbeats and t.datetime_start and t.datetime_start < cutoff
        ]
    finally:
        session.close()


def fail_lost_trials(study: optuna.Study) -> None:
    """``optuna.storages.fail_stale_trials``, plus an ``error`` user attribute saying the trial was lost and when.

    The attribute is set while the trial is still RUNNING (a finished trial's attributes are frozen).
    """
    storage = study._storage  # an RDBStorage, usually inside Optuna's cache (_CachedStorage)
    rdb = getattr(storage, "_backend", storage)
    if not isinstance(rdb, RDBStorage) or rdb.heartbeat_interval is None:
        return
    grace = rdb.grace_period or 2 * rdb.heartbeat_interval
    failed = []
    lost = [*storage._get_stale_trial_ids(study._study_id), *_never_beaten(rdb, study._study_id, grace)]
    for trial_id in lost:  # what fail_stale_trials reads, and what it misses
        now = datetime.datetime.now(datetime.timezone.utc)
        error = (
            f"lost: no heartbeat for over {grace} s (process killed, out of memory or node lost); "
            f"failed at {now:%Y-%m-%d %H:%M:%S} UTC"
        )
        try:
            storage.set_trial_user_attr(trial_id, "error", error)
            if storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL):
                failed.append(trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker failed it a moment ago
    callback = storage.get_heartbeat_stale_trial_callback()
    for trial_id in failed:
        trial = storage.get_trial(trial_id)
        log.warning("trial %d %s", trial.number, trial.user_attrs["error"])
        if callback is not None:
            callback(study, trial)


def open_storage(
    url: str,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    max_retry: int | None = None,
    create_sqlite_dir: bool = False,
) -> RDBStorage:
    """Open (and create the tables of) the storage at ``url``; :class:`SweepConfigError` when unreachable.

    With ``heartbeat_interval``, trials without a heartbeat for ``grace_period`` are failed and queued
    again up to ``max_retry`` times. A missing sqlite folder is only created with ``create_sqlite_dir``.
    """
    _check_sqlite_folder(url, create_sqlite_dir)
    if url.startswith("sqlite"):  # several processes write one file: wait for its lock
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                retry = RetryLostSearchTrials(max_retry) if heartbeat_interval else None
                return RDBStorage(
                    url,
                    engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=retry,
                )
        except Exception as e:  # sqlalchemy/driver: unreachable server, bad credentials, missing driver
            reason = one_line(getattr(e, "orig", None) or e)
            racing = ("already exists", "duplicate key", "UniqueViolation", "UNIQUE constraint")
            if attempt == 4 or not any(r in reason for r in racing):
                break
            time.sleep(0.5 + random.random())  # two workers created the tables at once: open theirs
    raise SweepConfigError(
        f"cannot open the Optuna storage {redact_url(url)}: {reason}. Check that the server is running "
        "and the URL (driver, user, password, host, port, database) is right; nothing was written"
    )


class Heartbeats:
    """A daemon thread recording, every ``interval`` seconds, the heartbeat of each trial id added.

    The sweeper beats for the trials it has in flight, each trial process for itself while it trains;
    with ``interval`` None (heartbeats off) it does nothing.
    """

    def __init__(self, storage: RDBStorage, interval: int | None) -> None:
        self.storage, self.interval = storage, interval
        self.trial_ids: set[int] = set()
        self._stop = threading.Event()
        if interval:
            threading.Thread(target=self._run, name="optuna-heartbeat", daemon=True).start()

    def add(self, trial_id: int) -> None:
        if self.interval:
            self.trial_ids.add(trial_id)
            self._record(trial_id)

    def remove(self, trial_id: int) -> None:
        self.trial_ids.discard(trial_id)

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for trial_id in self.trial_ids.copy():
                self._record(trial_id)

    def _record(self, trial_id: int) -> None:
        try:
            self.storage.record_heartbeat(trial_id)
        except Exception as e:  # a missed beat is not worth stopping a sweep or a training for
            log.warning("could not record the heartbeat of trial id %d: %s", trial_id, e)


def load_or_create_study(
    storage: RDBStorage, name: str, direction: str, space: SearchSpace, pruner: PrunerConf
) -> tuple[optuna.Study, bool]:
    """Resume the study ``name`` or create it; returns ``(study, resumed)``.

    A study that exists with another direction or search space is refused: it would mix incomparable trials.
    """
    spec: dict[str, Any] = {"direction": direction, "search_space": space.to_json()}
    for _ in range(20):
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            try:
                direction_ = optuna.study.StudyDirection[direction.upper()]
                study = optuna.create_study(study_name=name, storage=storage, direction=direction_)
            except optuna.exceptions.DuplicatedStudyError:
                continue  # another worker created it a moment ago: load theirs
            study.set_user_attr(STUDY_SPEC_ATTR, spec)
            study.set_user_attr("pruner", dataclasses.asdict(pruner))
            return study, False
        if STUDY_SPEC_ATTR in study.user_attrs or study.trials:
            break
        time.sleep(0.25)  # created by another worker that has not stored its spec yet
    where, stored = redact_url(storage.url), study.user_attrs.get(STUDY_SPEC_ATTR)
    new_name = (
        f"pick a new name with hydra.sweeper.study_name=<name> (e.g. {name}-v2), or delete the old study"
    )
    if study.direction.name.lower() != direction:
        problem = f"exists in {where} with direction={study.direction.name.lower()}, not {direction}"
    elif stored is None:
        problem = f"in {where} was not created by this sweeper"
    elif stored["search_space"] != spec["search_space"]:
        old, new = stored["search_space"], spec["search_space"]
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        problem = f"exists with a different search space (changed: {', '.join(changed)})"
    else:
        # The pruner may change between runs (it is not part of the results); trials read it from here.
        study.set_user_attr("pruner", dataclasses.asdict(pruner))
        return study, True
    raise SweepConfigError(f"study {name!r} {problem}: {new_name}")


def check_settings(s: NerOptunaSweeperConf) -> None:
    """Raise :class:`SweepConfigError` for a ``hydra.sweeper`` value that cannot work."""
    if s.direction not in ("maximize", "minimize"):
        raise SweepConfigError(
            f"hydra.sweeper.direction={s.direction!r} is not valid: use maximize or minimize"
        )
    for key in ("n_trials", "n_jobs", "max_failures"):
        if getattr(s, key) < 1:
            raise SweepConfigError(f"hydra.sweeper.{key}={getattr(s, key)} must be >= 1")
    if s.confirm.top_k < 0 or (s.confirm.top_k and s.confirm.seeds < 1):
        raise SweepConfigError(
            f"hydra.sweeper.confirm.top_k={s.confirm.top_k} / confirm.seeds={s.confirm.seeds}: use top_k >= 1 "
            "with seeds >= 1 to confirm the best configurations, or top_k=0 to skip the confirmation"
        )
    beat, grace = s.heartbeat_interval, s.grace_period
    if beat is not None and (beat < 1 or (grace is not None and grace <= beat)):
        raise SweepConfigError(
            f"hydra.sweeper.heartbeat_interval={beat} must be >= 1 second (or null: off) and shorter than "
            f"grace_period={grace}, e.g. a sixth of it"
        )


@dataclasses.dataclass
class SweepStudy:
    """The study a worker runs trials of: where it lives, what it searches, how many trials it needs."""

    study: optuna.Study
    storage: RDBStorage
    storage_url: str
    space: SearchSpace
    n_trials: int


def open_sweep_study(
    s: NerOptunaSweeperConf, arguments: Sequence[str], validate_batch: Callable[[list[list[str]]], Any]
) -> SweepStudy:
    """Check ``s`` and the command line's sweep ``arguments``, then create or resume the study.

    ``validate_batch`` (the Hydra sweeper's check of a batch of overrides) is shown one example
    trial, so a key the config does not have is refused here rather than by every trial.
    """
    check_settings(s)
    space = parse_search_space(s.params, list(arguments))
    if s.confirm.top_k and "seed" in space.distributions:
        raise SweepConfigError(
            "hydra.sweeper.confirm re-runs configurations with other seeds, so seed cannot be searched: "
            "remove seed from the search space or set hydra.sweeper.confirm.top_k=0"
        )
    if not space.distributions:
        raise SweepConfigError(
            "the search space is empty: set hydra.sweeper.params, e.g. "
            "hydra.sweeper.params.trainer.learning_rate='tag(log, interval(1e-5, 1e-4))', or use sweep=lr_epochs"
        )
    sampler, pruner = build_sampler(s.sampler, space, s.sampler.seed), build_pruner(s.pruner)
    n_trials = s.n_trials
    if s.sampler.name == "grid" and grid_size(space) < n_trials:
        log.info("grid has %d points: n_trials lowered from %d", grid_size(space), n_trials)
        n_trials = grid_size(space)
    example = {
        name: d.choices[0] if isinstance(d, CategoricalDistribution) else d.low  # type: ignore[attr-defined]
        for name, d in space.distributions.items()
    }
    try:
        validate_batch([trial_overrides(space, example)])
    except Exception as e:
        raise SweepConfigError(f"the sweep's overrides do not fit the config: {one_line(e)}") from None
    url = storage_url(s)
    storage = open_storage(
        url, s.heartbeat_interval, s.grace_period, s.max_retry, create_sqlite_dir=not s.storage
    )
    study, resumed = load_or_create_study(storage, str(s.study_name), s.direction, space, s.pruner)
    study.sampler, study.pruner = sampler, pruner
    if resumed and study.trials and s.sampler.seed is not None and s.sampler.name != "grid":
        # A resumed study (or a second worker) must not replay the first run's random draws.
        study.sampler = build_sampler(s.sampler, space, s.sampler.seed + len(study.trials))
    status = f"resumed, {len(study.trials)} trials so far" if resumed else "new"
    log.info(
        f"Optuna study {s.study_name!r} ({status}) in {redact_url(url)}: {s.direction}, "
        f"sampler={s.sampler.name}, pruner={s.pruner.name}, n_trials={n_trials}, n_jobs={s.n_jobs}"
    )
    for name, value in {**space.distributions, **space.fixed}.items():
        log.info("  %s %s: %s", "search" if name in space.distributions else "fixed ", name, value)
    return SweepStudy(study, storage, url, space, n_trials)
