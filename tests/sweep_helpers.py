"""Shared helpers of the sweep tests: run the stand-in app (tests/sweep_app) or train.py as a multirun."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna

REPO = Path(__file__).resolve().parents[1]
SWEEP_APP = REPO / "tests" / "sweep_app" / "app.py"


def sweep_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {"WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1"}
    )
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def app_command(out: Path, *overrides: str) -> list[str]:
    """The stand-in app as a multirun, with the repository's presets (``sweep=...``) on its search path."""
    search_path = f"hydra.searchpath=[file://{REPO / 'conf'}]"
    return [sys.executable, str(SWEEP_APP), "-m", search_path, f"paths.output_dir={out}", *overrides]


def run_app(out: Path, *overrides: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the stand-in app as a multirun with ``overrides``; outputs under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        app_command(out, *overrides),
        cwd=out,
        env=sweep_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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
