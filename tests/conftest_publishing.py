"""Shared fixtures of the publishing tests: one tiny training run per test session, reused by every file.

The run is ``experiment=quickstart`` for one epoch with ``hub=push hub.dry_run=true``, so it also goes
through training's end-of-run hook (model card, staged upload folder). Import the fixtures into a
test module with ``from tests.conftest_publishing import tiny_run, forced_model  # noqa: F401``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_ID = "me/tiny-ner"
_RUN_CACHE: dict[str, Path] = {}


def make_tiny_run(output_dir: Path) -> Path:
    """Train the tiny model once (about 15 s on 2 CPU cores) and return its run directory."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "WANDB_API_KEY")}
    env.update(HF_HUB_OFFLINE="1", WANDB_MODE="disabled", TOKENIZERS_PARALLELISM="false")
    cmd = [
        sys.executable,
        str(REPO_ROOT / "train.py"),
        "experiment=quickstart",
        "logger=none",
        "trainer.num_train_epochs=1",
        f"paths.output_dir={output_dir}",
        "hub=push",
        f"hub.repo_id={REPO_ID}",
        "hub.dry_run=true",
    ]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p.parent for p in output_dir.rglob("metrics.json"))
    assert len(runs) == 1, runs
    return runs[0]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory of one tiny training run, shared by all publishing tests (do not modify it)."""
    if "run" not in _RUN_CACHE:
        _RUN_CACHE["run"] = make_tiny_run(tmp_path_factory.mktemp("publishing_runs"))
    return _RUN_CACHE["run"]


@pytest.fixture
def run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny run, for tests that change files."""
    dest = tmp_path / tiny_run.name
    shutil.copytree(tiny_run, dest, ignore=shutil.ignore_patterns("checkpoints", "hub_upload"))
    return dest


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time (to check nothing changed)."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }
