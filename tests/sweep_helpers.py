"""Shared helpers of the sweep tests: run the stand-in app (tests/sweep_app) or train.py as a multirun."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path
from typing import Any

import optuna

from tests.helpers import REPO_ROOT, run_script, script_command, script_env

SWEEP_APP = REPO_ROOT / "tests" / "sweep_app" / "app.py"
# Sweeps log W&B offline (the summary run is tested) and see every CPU as a worker would.
SWEEP_ENV = {
    "WANDB_MODE": "offline",
    "HYDRA_FULL_ERROR": "0",
    "PYTHONUNBUFFERED": "1",
    "CUDA_VISIBLE_DEVICES": None,
}


def sweep_env() -> dict[str, str]:
    return script_env(SWEEP_ENV)


def app_command(out: Path, *overrides: str) -> list[str]:
    """The stand-in app as a multirun, with the repository's presets (``sweep=...``) on its search path."""
    search_path = f"hydra.searchpath=[file://{REPO_ROOT / 'conf'}]"
    return script_command(SWEEP_APP, "-m", search_path, f"paths.output_dir={out}", *overrides)


def run_app(out: Path, *overrides: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the stand-in app as a multirun with ``overrides``; outputs under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    command = app_command(out, *overrides)
    return run_script(command[1], *command[2:], env=SWEEP_ENV, cwd=out, timeout=timeout)


def run_two_workers(out: Path, *overrides: str, timeout: float = 180) -> None:
    """Start two sweeps of the stand-in app at once (different sampler seeds) on one study; both must succeed."""
    workers = [
        subprocess.Popen(
            app_command(out, *overrides, f"hydra.sweeper.sampler.seed={seed}"),
            cwd=out,
            env=sweep_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    for w in workers:
        _, err = w.communicate(timeout=timeout)
        assert w.returncode == 0, err


def load(out: Path, study: str = "app") -> optuna.Study:
    """The study a run of the stand-in app wrote under ``out`` (default sqlite location)."""
    return optuna.load_study(study_name=study, storage=f"sqlite:///{out / 'optuna' / (study + '.db')}")


def states(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def sweep_dirs(out: Path) -> list[Path]:
    return sorted(p for p in (out / "multirun").iterdir() if p.is_dir())


def wandb_records(run_file: Path) -> list[Any]:
    """The records of a W&B run's transaction log (``run-<id>.wandb``, offline runs too), parsed with
    wandb's own protobuf definitions; the file is LevelDB's log format (32 KiB blocks, 7-byte headers)."""
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B", f"{run_file} is not a W&B run file"
    records, pos, chunks = [], 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:  # the rest of a block too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:  # zeroed rest of a block
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        chunks = chunk if kind in (1, 2) else chunks + chunk  # FULL, FIRST | MIDDLE, LAST
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            records.append(record)
    return records


def wandb_run_view(run_file: Path) -> dict[str, Any]:
    """What W&B will show of a run: id, job type, tags, group, final summary and exit code."""
    view: dict[str, Any] = {"summary": {}, "exit_code": None}
    for r in wandb_records(run_file):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            view.update(
                id=r.run.run_id, job_type=r.run.job_type, tags=list(r.run.tags), group=r.run.run_group
            )
        elif kind == "summary":
            for u in r.summary.update:
                view["summary"][u.key or "/".join(u.nested_key)] = json.loads(u.value_json)
        elif kind == "exit":
            view["exit_code"] = r.exit.exit_code
    return view
