"""Sweeps sharing a study through a real PostgreSQL server (Debian's postgresql package).

The test starts its own throw-away server (initdb + pg_ctl, as the ``postgres`` user when run as
root) on a loopback port and stops it afterwards. Without the server binaries it is skipped, or
fails when CI=true, so a CI run can never pass without having tested PostgreSQL.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import optuna
import pytest

from tests.sweep_helpers import run_two_workers
from tests.test_sweep_multirun import assert_all_trials_accounted_for

pytestmark = pytest.mark.postgres


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as_postgres() -> list[str]:
    """The command prefix that runs the server binaries as ``postgres`` when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        pytest.fail("running as root and runuser is missing: cannot start PostgreSQL as the postgres user")
    return ["runuser", "-u", "postgres", "--"]


@pytest.fixture(scope="module")
def postgres_url():
    bindir = _pg_bin()
    if bindir is None:
        message = (
            "PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's postgresql package "
            "(apt-get install postgresql) to run the shared-storage sweep tests"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    as_postgres = _run_as_postgres()
    root = Path(tempfile.mkdtemp(prefix="ner-pg-"))
    if as_postgres:
        shutil.chown(root, user="postgres")
    data, port = root / "data", _free_port()
    initdb = [str(bindir / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres", "-E", "UTF8"]
    subprocess.run([*as_postgres, *initdb], check=True, capture_output=True)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} -c fsync=off"
    log = str(root / "server.log")
    start = [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", log, "-w", "start"]
    subprocess.run([*as_postgres, *start], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_share_one_study_on_postgresql(tmp_path, postgres_url):
    overrides = [
        "hydra.sweeper.n_trials=6",
        f"hydra.sweeper.storage={postgres_url}",
        "hydra.sweeper.study_name=pg-two-workers",
        "hydra.sweeper.pruner.name=median",
        "sim.epoch_seconds=0.2",
        "hydra.sweeper.plots=false",
    ]
    run_two_workers(tmp_path, *overrides)
    study = optuna.load_study(study_name="pg-two-workers", storage=postgres_url)
    assert_all_trials_accounted_for(study, tmp_path, n_trials=6)
    assert not (tmp_path / "optuna").exists()  # nothing went to the default sqlite file
    # Intermediate values were reported through the server by the trial code.
    assert all(t.intermediate_values for t in study.trials if t.state.is_finished())
