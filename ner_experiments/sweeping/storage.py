"""Where a study lives: an embedded sqlite file by default, any SQLAlchemy URL for many machines.

The same code serves both: the URL decides. Every process of a sweep (the sweeper, each trial, other
workers) opens the storage with :func:`open_storage`, so they all share one study.
"""

from __future__ import annotations

import random
import re
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from ner_experiments.sweeping.search_space import SearchSpace, SweepConfigError

# Stored in the study's user attrs; a later run of the same study must agree with it.
STUDY_SPEC_ATTR = "ner_sweep"


def default_storage_url(storage_dir: str | Path, study_name: str) -> str:
    """``sqlite:///<storage_dir>/<study_name>.db`` as an absolute path, so trials in other processes agree."""
    safe = re.sub(r"[^A-Za-z0-9._=-]+", "_", study_name)
    return f"sqlite:///{(Path(storage_dir) / f'{safe}.db').resolve()}"


def resolve_storage_url(storage: str | None, storage_dir: str, study_name: str) -> tuple[str, bool]:
    """The study's URL, and whether it is the default sqlite file (whose folder may then be created).

    A relative sqlite path is made absolute: trials may run in other processes or another working directory.
    """
    if not storage:
        return default_storage_url(storage_dir, study_name), True
    url = str(storage)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).is_absolute():
        url = "sqlite:///" + str(Path(url[len("sqlite:///") :]).resolve())
    return url, False


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (for logs and error messages)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Several processes write the same file (trials, heartbeats, other workers): wait for the lock.
        return {"connect_args": {"timeout": 60}}
    if url.startswith("postgresql"):
        return {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    return {}


def open_storage(
    url: str,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    max_retry: int | None = None,
    create_sqlite_dir: bool = False,
) -> RDBStorage:
    """Open (and create the tables of) the storage at ``url``.

    With ``heartbeat_interval``, running trials whose heartbeat is older than ``grace_period`` are
    failed by :func:`optuna.storages.fail_stale_trials` and re-queued up to ``max_retry`` times.
    Raises :class:`SweepConfigError` when the storage cannot be reached; a missing sqlite folder
    is only created with ``create_sqlite_dir`` (the default location), so a typo writes nothing.
    """
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        if not path.parent.is_dir():
            if not create_sqlite_dir:
                raise SweepConfigError(
                    f"cannot open the Optuna storage {url}: folder {path.parent} does not exist; "
                    "create it or fix hydra.sweeper.storage (nothing was written)"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
    elif "://" not in url:
        raise SweepConfigError(
            f"hydra.sweeper.storage={url!r} is not a database URL: use e.g. sqlite:///outputs/optuna/study.db "
            "or postgresql+psycopg://user:password@host:5432/optuna"
        )
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                callback = (
                    RetryHeartbeatStaleTrialCallback(max_retry=max_retry) if heartbeat_interval else None
                )
                return RDBStorage(
                    url,
                    engine_kwargs=_engine_kwargs(url),
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=callback,
                )
        except (
            Exception
        ) as e:  # sqlalchemy/driver errors: unreachable server, bad credentials, missing driver
            reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
            racing = ("already exists", "duplicate key", "UniqueViolation", "UNIQUE constraint")
            if any(r in reason for r in racing) and attempt < 4:
                # Two workers creating the tables of a new storage at once: the other one won; open again.
                time.sleep(0.5 + random.random())
                continue
            break
    raise SweepConfigError(
        f"cannot open the Optuna storage {redact_url(url)}: {reason}. Check that the server is running "
        "and the URL (driver, user, password, host, port, database) is right; nothing was written"
    )


def study_spec(direction: str, space: SearchSpace) -> dict[str, Any]:
    """What makes two runs the same study: its direction and its search space."""
    return {"direction": direction, "search_space": space.to_json()}


def load_or_create_study(
    storage: RDBStorage,
    study_name: str,
    direction: str,
    space: SearchSpace,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    pruner_spec: dict[str, Any],
) -> tuple[optuna.Study, bool]:
    """Resume the study ``study_name`` or create it; returns ``(study, resumed)``.

    A study that exists with another direction or search space is not reused: that would mix
    incomparable trials. The error says how to pick a new name.
    """
    spec = study_spec(direction, space)
    for _ in range(20):
        try:
            study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
        except KeyError:
            try:
                study = optuna.create_study(
                    study_name=study_name,
                    storage=storage,
                    sampler=sampler,
                    pruner=pruner,
                    direction=direction,  # type: ignore[arg-type]  # checked: maximize | minimize
                )
            except optuna.exceptions.DuplicatedStudyError:
                continue  # another worker created it a moment ago: load theirs
            study.set_user_attr(STUDY_SPEC_ATTR, spec)
            study.set_user_attr("pruner", pruner_spec)
            return study, False
        if STUDY_SPEC_ATTR in study.user_attrs or study.trials:
            break
        time.sleep(0.25)  # created by another worker that has not stored its spec yet
    existing_direction = study.direction.name.lower()
    new_name_hint = (
        f"pick a new name with hydra.sweeper.study_name=<name> (e.g. {study_name}-v2), "
        "or delete the old study to start over"
    )
    if existing_direction != direction:
        raise SweepConfigError(
            f"study {study_name!r} exists in {redact_url(storage.url)} with direction={existing_direction}, "
            f"not {direction}: {new_name_hint}"
        )
    stored = study.user_attrs.get(STUDY_SPEC_ATTR)
    if stored is None:
        raise SweepConfigError(
            f"study {study_name!r} in {redact_url(storage.url)} was not created by this sweeper: {new_name_hint}"
        )
    if stored.get("search_space") != spec["search_space"]:
        old, new = stored.get("search_space", {}), spec["search_space"]
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise SweepConfigError(
            f"study {study_name!r} exists with a different search space (changed: {', '.join(changed)}): "
            f"{new_name_hint}"
        )
    # The pruner may change between runs (it is not part of the results); trials read it from here.
    study.set_user_attr("pruner", pruner_spec)
    return study, True
