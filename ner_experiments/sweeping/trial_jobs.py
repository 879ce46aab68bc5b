"""What each launched trial job is given: its Hydra overrides and, for parallel trials, its own GPU.

The overrides carry the trial's parameters, the study's coordinates (so training reports to the
trial), W&B grouping and naming, and the sweep directory as resolved by the sweeper.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from optuna.trial import Trial

from hydra_plugins.ner_optuna_sweeper.config import NerOptunaSweeperConf
from ner_experiments.sweeping.search_space import SearchSpace, format_param, short_name, trial_overrides


def visible_gpus() -> list[str]:
    """GPU ids this process may hand out: ``CUDA_VISIBLE_DEVICES`` when set, else what nvidia-smi lists."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def gpus_to_assign(settings: NerOptunaSweeperConf, launcher: Any) -> list[str]:
    """The GPUs to share out among parallel trials: only with the joblib launcher and two GPUs or more."""
    if not settings.assign_gpus or "joblib" not in type(launcher).__module__.lower():
        return []
    gpus = visible_gpus()
    return gpus if len(gpus) >= 2 else []


def job_overrides(
    trial: Trial,
    space: SearchSpace,
    settings: NerOptunaSweeperConf,
    storage_url: str,
    config: Any,
    gpu: str | None = None,
) -> list[str]:
    """The overrides of one trial's job: fixed and sampled values first, then the sweep's plumbing."""
    study_name = str(settings.study_name)
    overrides = trial_overrides(space, trial.params)
    overrides += [
        f"optuna.storage={_quote(storage_url)}",
        f"optuna.study_name={_quote(study_name)}",
        f"optuna.trial_number={trial.number}",
    ]
    if settings.heartbeat_interval:
        overrides.append(f"optuna.heartbeat_interval={int(settings.heartbeat_interval)}")
    if select(config, "logger") is not None:
        run_name = f"trial-{trial.number}_" + "_".join(
            f"{short_name(k)}={f'{v:.3g}' if isinstance(v, float) else format_param(v)}"
            for k, v in trial.params.items()
        )
        tags = ["sweep", study_name, f"trial-{trial.number}"]
        overrides += [
            f"logger.group={_quote(study_name)}",
            f"logger.run_name={_quote(run_name)}",
            "logger.tags=[" + ",".join(_quote(t) for t in tags) + "]",
        ]
    sweep_dir = select(config, "hydra.sweep.dir")
    if sweep_dir:
        # Pin the directory as resolved here: a time-stamped ${now:...} would be evaluated again
        # (differently) in a launcher's worker process, scattering trials over several folders.
        overrides.append(f"hydra.sweep.dir={_quote(str(Path(str(sweep_dir)).resolve()))}")
    if gpu is not None:
        overrides.append(f"++hydra.job.env_set.CUDA_VISIBLE_DEVICES={gpu}")
    return overrides


def select(config: Any, key: str) -> Any:
    """``config``'s value at the dotted ``key``, or None when it has none (or there is no config)."""
    if config is None:
        return None
    try:
        return OmegaConf.select(config, key)
    except Exception:
        return None


def _quote(value: str) -> str:
    """Quote a string for a Hydra override unless it is a plain identifier-like word."""
    if re.fullmatch(r"[A-Za-z0-9_./:+-]+", value) and not value[0].isdigit():
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
