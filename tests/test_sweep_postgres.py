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

from tests.helpers import TRAIN_PY, run_script
from tests.sweep_helpers import SWEEP_ENV, run_two_workers
from tests.test_sweep_multirun import assert_all_trials_accounted_for

pytestmark = pytest.mark.postgres
PASSWORD = "pw-PASSWORD-7f3a"  # the study server's password


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
    password_file = root / "password"
    password_file.write_text(PASSWORD + "\n")
    if as_postgres:
        shutil.chown(password_file, user="postgres")
    # Password-protected, as a shared study server is: the password must never reach a file or the log.
    initdb = [str(bindir / "initdb"), "-D", str(data), "--auth=scram-sha-256", f"--pwfile={password_file}"]
    initdb += ["-U", "postgres", "-E", "UTF8"]
    subprocess.run([*as_postgres, *initdb], check=True, capture_output=True)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} -c fsync=off"
    log = str(root / "server.log")
    start = [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", log, "-w", "start"]
    subprocess.run([*as_postgres, *start], check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{port}/postgres"
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


def _files_containing(root: Path, secret: bytes) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and secret in p.read_bytes()
    )


def test_sweep_on_a_password_protected_study_writes_the_password_nowhere(tmp_path, postgres_url):
    # The setup docs/sweeps.md describes for a shared study, with every output a run can write or send:
    # W&B (offline files, uploaded on `wandb sync`), a staged Hub upload, the sweep's results.
    out = tmp_path / "outputs"
    out.mkdir()
    proc = run_script(
        TRAIN_PY, "-m", "sweep=quick", "experiment=quickstart", "logger=wandb",
        "hub=push", "hub.repo_id=me/tiny-ner", "hub.dry_run=true",
        f"hydra.sweeper.storage={postgres_url}", "hydra.sweeper.study_name=pg-secret",
        "hydra.sweeper.n_trials=2", "hydra.sweeper.plots=false", "trainer.num_train_epochs=1",
        "hydra.sweeper.confirm.top_k=1", "hydra.sweeper.confirm.seeds=1",
        "dataset.max_train_samples=32", "dataset.max_eval_samples=16", f"paths.output_dir={out}",
        env={**SWEEP_ENV, "WANDB_MODE": "offline"}, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = optuna.load_study(study_name="pg-secret", storage=postgres_url)
    # Two search trials and one confirmation run (another seed), all through the server.
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert sum("confirm_of" in t.user_attrs for t in study.trials) == 1
    assert list(out.glob("multirun/*/*/*/hub_upload/model.safetensors"))  # the upload was staged
    assert list(out.glob("multirun/*/*/*/wandb/offline-run-*/run-*.wandb"))  # W&B wrote its run
    secret = PASSWORD.encode()
    assert _files_containing(out, secret) == []
    assert PASSWORD not in proc.stdout + proc.stderr
    trial_log = next(out.glob("multirun/*/*/trial-0/train.log")).read_text()
    assert "W&B: logging offline (WANDB_MODE=offline is set)" in trial_log
    # The trials still reported to the study through the server (the URL reached them by the environment).
    assert all(t.intermediate_values for t in study.trials)
