"""Run directories: one timestamp per launch (shared by torchrun ranks), and finding a run to resume."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ner_experiments.errors import ConfigError

_LAUNCH_TIME: datetime | None = None
METRICS_FILE = "metrics.json"
LOG_FILE = "train.log"
CHECKPOINTS_DIR = "checkpoints"
RESUME_TRUE = {"true", "latest", "yes", "1"}


def _shared_launch_time() -> datetime:
    """The launch time, agreed on by every process that torchrun started for this job.

    torchrun's ranks are children of one agent process, so the first rank to start writes the time
    to a file named after that parent and the others read it: all ranks then write one run dir.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return datetime.now()
    tag = os.environ.get("TORCHELASTIC_RUN_ID", "none")
    marker = (
        Path(os.environ.get("TMPDIR", "/tmp"))
        / f"ner-experiments-launch-{socket.gethostname()}-{os.getppid()}-{tag}"
    )
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        stamp = datetime.now()
        with os.fdopen(fd, "w") as f:
            f.write(stamp.isoformat())
        return stamp
    except FileExistsError:
        for _ in range(50):
            text = marker.read_text().strip()
            if text:
                return datetime.fromisoformat(text)
            time.sleep(0.1)
        return datetime.now()


def launch_time_resolver(fmt: str) -> str:
    """OmegaConf resolver ``${ner_now:%H-%M-%S}``: like Hydra's ``now``, but identical across DDP ranks."""
    global _LAUNCH_TIME
    if _LAUNCH_TIME is None:
        _LAUNCH_TIME = _shared_launch_time()
    return _LAUNCH_TIME.strftime(fmt)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("ner_now"):
        OmegaConf.register_new_resolver("ner_now", launch_time_resolver, use_cache=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest ``checkpoints/checkpoint-<step>`` of a run, or None."""
    folder = run_dir / CHECKPOINTS_DIR
    if not folder.is_dir():
        return None
    found = [p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    complete = [p for p in found if (p / "trainer_state.json").is_file()]
    return max(complete, key=lambda p: int(p.name.split("-")[-1]), default=None)


def _comparable(overrides: list[str]) -> list[str]:
    # Redacted as .hydra/overrides.yaml is (a password given on the command line is not saved there).
    from ner_experiments.redaction import redact_text

    return sorted(redact_text(o) for o in overrides if not o.lstrip("+~").startswith(("resume=", "hydra.")))


def find_run_to_resume(resume: str, output_dir: Path, overrides: list[str]) -> Path:
    """The run dir that ``resume=<value>`` points at.

    ``true``/``latest``: the newest unfinished run under ``output_dir`` started with the same overrides
    (``resume`` itself left out). Otherwise ``resume`` is the run dir. Either way it must hold a checkpoint.
    """
    if resume.strip().lower() in RESUME_TRUE:
        wanted = _comparable(overrides)
        candidates = []
        for saved in output_dir.glob("**/.hydra/overrides.yaml"):
            run_dir = saved.parent.parent
            if (run_dir / METRICS_FILE).exists() or latest_checkpoint(run_dir) is None:
                continue
            previous = OmegaConf.to_container(OmegaConf.load(saved))
            if isinstance(previous, list) and _comparable([str(o) for o in previous]) == wanted:
                candidates.append(run_dir)
        if not candidates:
            raise ConfigError(
                f"resume=true: no unfinished run with a checkpoint and the same overrides under {output_dir}: "
                "start without resume, or give the run dir (resume=outputs/<date>/<time>_<name>)"
            )
        return max(candidates, key=lambda p: latest_checkpoint(p).stat().st_mtime)  # type: ignore[union-attr]
    run_dir = Path(resume)
    if not run_dir.is_dir():
        raise ConfigError(
            f"resume={resume}: no such run directory: give outputs/<date>/<time>_<name> or resume=true"
        )
    if (run_dir / METRICS_FILE).exists():
        raise ConfigError(
            f"resume={resume}: the run already finished (it has {METRICS_FILE}); nothing to resume, "
            "start a new run without resume"
        )
    if latest_checkpoint(run_dir) is None:
        raise ConfigError(
            f"resume={resume}: the run has no checkpoint to continue from (checkpoints/checkpoint-*)"
        )
    return run_dir


def log_to_run_dir(run_dir: Path, replaced: Path | None = None) -> None:
    """Send the log file handlers' lines to ``<run_dir>/train.log`` (appended): a resumed run keeps one
    log. ``replaced``: the new Hydra dir they wrote to, removed when it holds nothing else of use."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            appended = logging.FileHandler(run_dir / LOG_FILE, mode="a", encoding="utf-8")
            appended.setFormatter(handler.formatter)
            appended.setLevel(handler.level)
            root.removeHandler(handler)
            handler.close()
            root.addHandler(appended)
    if replaced is not None and replaced.resolve() != run_dir.resolve():
        remove_run_dir(replaced)


def remove_run_dir(run_dir: Path) -> None:
    """Delete a run dir that holds no training result, and its date folder when that is left empty."""
    shutil.rmtree(run_dir, ignore_errors=True)
    parent = run_dir.parent
    if parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a reader never sees a half-written file (temp file + rename); secrets redacted."""
    from ner_experiments.redaction import redact

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(redact(data), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
