"""How a run stops before its end, said in one line: a signal, or a full disk.

SIGTERM (what SLURM sends at a time limit) and SIGINT (Ctrl-C) during training ask for a clean stop:
the step under way finishes, a checkpoint is saved (``train.stop_callback.StopCallback``), and the run
ends with :class:`RunInterrupted` naming the step reached and the exact ``resume=...`` command. Outside
the training loop, or on a second signal, the run stops at once. A full disk (``ENOSPC``, or torch's
"iostream error" with no space left) becomes :class:`DiskFullError` naming the path and the space
needed and left; the checkpoint it cut short is removed so that resuming starts from an intact one.

This module imports neither torch nor transformers: the entry point installs the handlers first thing.
"""

from __future__ import annotations

import errno
import logging
import shlex
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from ner_experiments.errors import DiskFullError, RunInterrupted
from ner_experiments.run_dirs import CHECKPOINTS_DIR, latest_checkpoint

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
DISK_FULL_WORDS = ("No space left on device", "os error 28", "StorageFull", "Disk quota exceeded")
# How torch.save reports a failed write (a full disk among other causes): checked against the free space.
TORCH_WRITE_FAILURES = ("iostream error", "failed writing file")


@dataclass
class RunProgress:
    """What the stop messages need to know about the run, filled in as it goes."""

    run_dir: Path | None = None
    in_training: bool = False
    step: int = 0
    max_steps: int = 0
    saved_step: int = -1
    checkpoint_bytes: int = 0  # about what one checkpoint takes on disk (weights + optimizer state)
    model_bytes: int = 0
    signum: int | None = None  # the signal that asked for a stop


PROGRESS = RunProgress()


def install_signal_handlers() -> None:
    """SIGTERM/SIGINT stop the run cleanly (see the module docstring). Main thread only."""
    for signum in STOP_SIGNALS:
        try:
            signal.signal(signum, _on_signal)
        except ValueError:  # not the main thread: leave Python's defaults
            return


def _on_signal(signum: int, frame: object) -> None:
    if PROGRESS.in_training and PROGRESS.signum is None:
        PROGRESS.signum = signum
        log.warning(
            "%s received: stopping after this step and saving a checkpoint", signal.Signals(signum).name
        )
        return
    how = "stopped at once (a second signal)" if PROGRESS.in_training else "outside the training loop"
    raise RunInterrupted(interrupted_message(signum, how), signum)


def interrupted_message(signum: int, how: str = "stopped cleanly") -> str:
    """One line: which signal, the step reached, what was saved and the command that resumes."""
    name = signal.Signals(signum).name
    run_dir = PROGRESS.run_dir
    checkpoint = latest_checkpoint(run_dir) if run_dir else None
    if run_dir is None or checkpoint is None:
        return f"{name} before training saved a checkpoint: nothing was kept; start the run again"
    return (
        f"{name} at step {PROGRESS.step} of {PROGRESS.max_steps}, {how}; the newest checkpoint is "
        f"{checkpoint}; resume with: {resume_command(run_dir)}"
    )


def resume_command(run_dir: Path) -> str:
    """The command line that continues this run: its own overrides plus ``resume=<run_dir>``."""
    from hydra.core.hydra_config import HydraConfig

    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    args = [o for o in overrides if not o.lstrip("+~").startswith("resume=")] + [f"resume={run_dir}"]
    program = sys.argv[0] or "train.py"
    head = f"python {shlex.quote(program)}" if program.endswith(".py") else shlex.quote(Path(program).name)
    return f"{head} {shlex.join(args)}"


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"  # pragma: no cover


def free_bytes(path: Path) -> int:
    """Free space on the disk that holds ``path`` (or its nearest existing folder)."""
    folder = path
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def check_disk_space(run_dir: Path) -> None:
    """Before the first step: refuse a run whose disk cannot hold one checkpoint and the final model."""
    need = PROGRESS.checkpoint_bytes + PROGRESS.model_bytes
    free = free_bytes(run_dir)
    if free < need:
        raise DiskFullError(
            f"not enough disk space for {run_dir}: a checkpoint of this model and the final model need about "
            f"{human_bytes(need)}, {human_bytes(free)} is left on that disk; free space, or set "
            "paths.output_dir to a folder on a larger disk"
        )


def _chain(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def disk_full_error(err: BaseException) -> DiskFullError | None:
    """The one-line error for an exception a full disk caused, or None for any other exception.

    Removes what the full disk cut short (the newest checkpoint when it is not intact, a half-written
    ``model.tmp``), so the run dir holds only what can be resumed from."""
    chain = _chain(err)
    full = any(isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS for e in chain) or any(
        word in str(e) for e in chain for word in DISK_FULL_WORDS
    )
    run_dir = PROGRESS.run_dir or _hydra_run_dir()
    if not full and run_dir is not None and any(w in str(e) for e in chain for w in TORCH_WRITE_FAILURES):
        full = free_bytes(run_dir) < max(PROGRESS.checkpoint_bytes, 1 << 20)
    if not full:
        return None
    path = next((Path(e.filename) for e in chain if isinstance(e, OSError) and e.filename), None)
    if run_dir is not None:
        path = path or _newest_checkpoint_dir(run_dir) or run_dir
        _remove_cut_short(run_dir)
    free = human_bytes(free_bytes(path or Path.cwd()))
    need = (
        f"a checkpoint of this model needs about {human_bytes(PROGRESS.checkpoint_bytes)}, "
        if PROGRESS.checkpoint_bytes
        else ""
    )
    checkpoint = latest_checkpoint(run_dir) if run_dir else None
    then = (
        f"then resume with: {resume_command(run_dir)}"  # type: ignore[arg-type]
        if checkpoint
        else "then start the run again (no checkpoint was kept)"
    )
    return DiskFullError(
        f"out of disk space writing {path}: {need}{free} is left on that disk; free space (or set "
        f"paths.output_dir to a larger disk), {then}"
    )


def _hydra_run_dir() -> Path | None:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else None


def _newest_checkpoint_dir(run_dir: Path) -> Path | None:
    found = [
        p for p in (run_dir / CHECKPOINTS_DIR).glob("checkpoint-*") if p.name.rsplit("-", 1)[-1].isdigit()
    ]
    return max(found, key=lambda p: int(p.name.rsplit("-", 1)[-1]), default=None)


def _remove_cut_short(run_dir: Path) -> None:
    from ner_experiments.checkpoints import checkpoint_damage

    newest = _newest_checkpoint_dir(run_dir)
    if newest is not None and checkpoint_damage(newest) is not None:
        shutil.rmtree(newest, ignore_errors=True)
    shutil.rmtree(run_dir / "model.tmp", ignore_errors=True)
    folder = run_dir / CHECKPOINTS_DIR
    if folder.is_dir() and latest_checkpoint(run_dir) is None:
        shutil.rmtree(folder, ignore_errors=True)  # nothing to resume from: the failed start is removed
