"""Shared helpers of the sweep tests: run the stand-in app (tests/sweep_app) or train.py as a multirun."""

from __future__ import annotations

import subprocess
from pathlib import Path

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
