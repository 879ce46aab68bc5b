"""One process per run dir: a lock file holding its owner's pid, released by the kernel when it dies.

``<run_dir>/run.lock`` is held with ``flock`` for as long as the process lives, so a second process
started on the same run dir (the same ``hydra.run.dir``, or ``resume=`` of a run still training) is
refused before it writes anything there. A lock left by a dead process (kill -9, a node that went
down) is no longer held: the next process takes it over. The pid, host and start time written in it
are what the refusal names.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
from datetime import datetime
from pathlib import Path

from ner_experiments.errors import RunInUseError

LOCK_FILE = "run.lock"

try:  # POSIX; on Windows runs are not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

_held: dict[Path, int] = {}  # resolved run dir -> the open file descriptor holding its lock


def _is_main_process() -> bool:
    """torchrun's ranks share one run dir: only rank 0 takes its lock."""
    return int(os.environ.get("RANK", "0")) == 0


def holds_lock(run_dir: Path) -> bool:
    return run_dir.resolve() in _held


def claim_run_dir(run_dir: Path, key: str) -> None:
    """Make ``run_dir`` (if needed) and lock it for this process until it exits.

    Raises :class:`RunInUseError`, naming ``key`` (the setting that chose the dir) and the owner, when
    another live process holds it."""
    if fcntl is None or not _is_main_process() or holds_lock(run_dir):
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = _describe_owner(fd)
            os.close(fd)
            raise RunInUseError(
                f"{key}={run_dir} is in use by {owner} (lock {path}): wait for that run to end or stop it, "
                f"or give another {key}"
            ) from None
        try:
            same_file = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:  # not a lock file its previous owner removed while we waited for it
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    owner = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now().isoformat("T", "seconds"),
    }
    os.write(fd, (json.dumps(owner) + "\n").encode())
    if not _held:
        atexit.register(release_all)
    _held[run_dir.resolve()] = fd


def release_run_dir(run_dir: Path) -> None:
    """Remove this process's lock of ``run_dir`` (it also goes when the process ends, however it ends)."""
    fd = _held.pop(run_dir.resolve(), None)
    if fd is None:
        return
    try:
        (run_dir / LOCK_FILE).unlink(missing_ok=True)
    except OSError:
        pass
    os.close(fd)


def release_all() -> None:
    for run_dir in list(_held):
        release_run_dir(run_dir)


def _describe_owner(fd: int) -> str:
    try:
        owner = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"process {owner['pid']} on {owner['host']} (started {owner['started']})"
    except (ValueError, KeyError, OSError):
        return "another process"
