"""Whether a checkpoint can be resumed from, read from its files' own structure without loading them.

A checkpoint cut short (the disk filled, the node died while saving) has a truncated ``model.safetensors``
or a ``.pt`` file without its zip directory; ``resume=`` then falls back to the newest intact one.
"""

from __future__ import annotations

import json
import logging
import struct
import zipfile
from pathlib import Path

from ner_experiments.errors import ConfigError
from ner_experiments.run_dirs import CHECKPOINTS_DIR

log = logging.getLogger(__name__)

DAMAGED_PREFIX = "damaged-"  # a damaged checkpoint is moved aside as checkpoints/damaged-checkpoint-<step>
TORCH_FILES = ("optimizer.pt", "scheduler.pt", "rng_state.pth", "scaler.pt")


def safetensors_damage(path: Path) -> str | None:
    """Why a ``.safetensors`` file is not whole (a header that does not parse, fewer bytes than its
    tensors need), or None."""
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            if 8 + header_len > size:
                raise ValueError
            header = json.loads(f.read(header_len))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError, IndexError):
        return f"{path.name} has no readable header ({size:,} bytes)"
    if size < 8 + header_len + end:
        return f"{path.name} is truncated: {size:,} of {8 + header_len + end:,} bytes"
    return None


def checkpoint_damage(folder: Path) -> str | None:
    """Why ``checkpoint-<step>`` cannot be resumed from, or None when its files are whole."""
    try:
        json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "trainer_state.json is missing or unreadable"
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        return "it has no model weights (*.safetensors)"
    for path in weights:
        problem = safetensors_damage(path)
        if problem:
            return problem
    for name in TORCH_FILES:
        path = folder / name
        if path.exists():
            try:
                zipfile.ZipFile(path).close()  # torch.save writes a zip; a cut file loses its directory
            except (OSError, zipfile.BadZipFile):
                return f"{name} is truncated or unreadable"
    return None


def _step(folder: Path) -> int:
    return int(folder.name.rsplit("-", 1)[-1])


def resumable_checkpoint(run_dir: Path, move_aside: bool = True) -> Path:
    """The newest intact checkpoint of ``run_dir``. Newer damaged ones are moved aside (so neither this
    nor a later resume, nor the Trainer's checkpoint rotation, picks them up) with one warning naming
    both; :class:`ConfigError` when none is intact."""
    folder = run_dir / CHECKPOINTS_DIR
    found = [p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.rsplit("-", 1)[-1].isdigit()]
    damaged: list[tuple[Path, str]] = []
    for checkpoint in sorted(found, key=_step, reverse=True):
        problem = checkpoint_damage(checkpoint)
        if problem is None:
            for bad, why in damaged:
                if move_aside:  # torchrun: rank 0 only
                    bad.rename(bad.with_name(DAMAGED_PREFIX + bad.name))
                log.warning(
                    "%s is damaged (%s): resuming from %s, the newest intact checkpoint; the damaged one is "
                    "kept as %s",
                    bad,
                    why,
                    checkpoint.name,
                    bad.with_name(DAMAGED_PREFIX + bad.name).name,
                )
            return checkpoint
        damaged.append((checkpoint, problem))
    listed = "; ".join(f"{p.name}: {why}" for p, why in damaged) or "there are none"
    raise ConfigError(
        f"cannot resume {run_dir}: no intact checkpoint in {folder} ({listed}): start a new run without resume"
    )
