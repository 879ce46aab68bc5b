"""What may leave this machine: one rule for secrets, applied to everything a run writes or sends, and one
for machine paths, applied to everything that is published.

**Secrets** (:func:`redact_text`, :func:`redact`): the password of a URL (``scheme://user:PASSWORD@host``
becomes ``scheme://user:<redacted>@host``), the value of a token-like query parameter (``?token=``,
``&api_key=``, ``sig=``, ``X-Amz-Signature=``...), the value of a secret-looking key in nested data
(``password``, ``token``, ``api_key``, ``secret``) and, anywhere, the values of ``HF_TOKEN``,
``WANDB_API_KEY`` and ``PGPASSWORD`` when set. It runs on config.yaml, Hydra's ``.hydra/*.yaml`` and
``multirun.yaml`` (:class:`RedactSecrets`, after Hydra writes them), ``model/training_config.yaml``,
train.log and the console (:class:`RedactingFilter`), W&B's config and recorded command line, TensorBoard
text, the sweep's trials.csv / best.json and the model card.

**Machine paths** (:func:`without_machine_paths`, :func:`replace_machine_paths`): in published files
(``hub_upload/``, the card) an absolute path is replaced by its last component (the folder name), so a
data folder or a local model is named by its folder name; a local model's Hub id is ``model.base_model``.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

REDACTED = "<redacted>"
# ``scheme://user:password@`` (user may be empty); the password stops at whitespace, a quote, ``/`` or ``@``.
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@'\"]*):[^\s@'\"/]+@")
# ``?token=...`` / ``&X-Amz-Signature=...``: a query parameter whose name says it holds a credential.
_SECRET_PARAM = re.compile(
    r"([?&;][A-Za-z0-9_.\-]*?(?:token|key|password|passwd|pwd|secret|signature|sig|credential|auth)"
    r"[A-Za-z0-9_.\-]*=)[^&#\s'\"]+",
    re.IGNORECASE,
)
# A key that names a credential: ``password``, ``hf_token``, ``api_key``, ``client_secret`` (not ``tokens_column``).
SECRET_KEY = re.compile(
    r"^(?:.*[_.\-])?(?:token|auth_token|api_key|apikey|password|passwd|secret|secret_key|access_key)$",
    re.IGNORECASE,
)
SECRET_ENV_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "WANDB_API_KEY", "PGPASSWORD")
MIN_SECRET_LENGTH = 8  # a shorter environment value would be replaced wherever it happens to occur


def _secret_values() -> list[str]:
    values = [os.environ.get(name, "").strip() for name in SECRET_ENV_VARS]
    return sorted({v for v in values if len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


def redact_text(text: str) -> str:
    """``text`` with every credential the rule knows replaced by ``<redacted>``."""
    text = _URL_PASSWORD.sub(rf"\1:{REDACTED}@", text)
    text = _SECRET_PARAM.sub(rf"\1{REDACTED}", text)
    for value in _secret_values():
        text = text.replace(value, REDACTED)
    return text


def redact(data: Any) -> Any:
    """A copy of nested data (dicts, lists, strings) with secrets redacted: values of secret-looking
    keys replaced whole, every string passed through :func:`redact_text`."""
    if isinstance(data, dict):
        return {
            k: (REDACTED if SECRET_KEY.search(str(k)) and v not in (None, "") else redact(v))
            for k, v in data.items()
        }
    if isinstance(data, list | tuple):
        return type(data)(redact(v) for v in data)
    if isinstance(data, str):
        return redact_text(data)
    return data


def redact_file(path: Path) -> None:
    """Rewrite a text file with its secrets redacted (atomically; untouched when there are none)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    clean = redact_text(text)
    if clean != text:
        tmp = path.with_name(path.name + ".redacting")
        tmp.write_text(clean, encoding="utf-8")
        os.replace(tmp, path)


class RedactingFilter(logging.Filter):
    """A logging filter (on the console and train.log handlers, conf/hydra/default.yaml) that redacts
    each record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's problem, not ours
            return True
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def _redact_hydra_files(config: Any) -> None:
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    runtime_dir = OmegaConf.select(config, "hydra.runtime.output_dir", default=None)
    subdir = OmegaConf.select(config, "hydra.output_subdir", default=".hydra")
    if runtime_dir and subdir:
        for path in sorted((Path(runtime_dir) / subdir).glob("*.yaml")):
            redact_file(path)
    if OmegaConf.select(config, "hydra.mode", default=None) == RunMode.MULTIRUN:
        redact_file(Path(str(config.hydra.sweep.dir)) / "multirun.yaml")


class RedactSecrets(Callback):
    """Hydra callback: the command line (``sys.argv``, which W&B records) is redacted once Hydra has read
    it, and Hydra's own files (``.hydra/*.yaml``, the sweep's ``multirun.yaml``) after Hydra writes them."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        redact_argv()

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        redact_argv()

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        redact_argv()
        _redact_hydra_files(config)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        redact_file(Path(str(config.hydra.sweep.dir)) / "multirun.yaml")


def redact_argv() -> None:
    """Redact this process's ``sys.argv`` in place (Hydra has parsed it; W&B records it as ``args``)."""
    sys.argv[:] = [redact_text(arg) for arg in sys.argv]


# --- machine paths in published files -------------------------------------------------------------


def is_machine_path(value: str) -> bool:
    """True for an absolute path of a file system (``/data/x``, ``~/x``, ``C:\\x``), not a URL or Hub id."""
    return value.startswith(("/", "~")) or bool(re.match(r"^[A-Za-z]:[\\/]", value))


def folder_name(value: str) -> str:
    """The last component of a path: how a published file names a data folder or a local model."""
    return Path(value.rstrip("/\\")).name or value


def without_machine_paths(data: Any) -> Any:
    """A copy of nested data with every absolute path replaced by its folder name (and secrets redacted)."""
    if isinstance(data, dict):
        return {k: without_machine_paths(v) for k, v in redact(data).items()}
    if isinstance(data, list | tuple):
        return type(data)(without_machine_paths(v) for v in data)
    if isinstance(data, str):
        if is_machine_path(data):
            return folder_name(data)
        return redact_text(data)
    return data


def replace_machine_paths(text: str, paths: Iterable[str | os.PathLike | None]) -> str:
    """``text`` with each of ``paths`` (absolute, resolved or as given) replaced by its folder name,
    the longest first, so a path inside another is named by its own folder."""
    found: dict[str, str] = {}
    for path in paths:
        if not path:
            continue
        for form in {str(path), str(Path(path).expanduser().resolve())}:
            if is_machine_path(form) and len(form) > 1:
                found[form.rstrip("/")] = folder_name(form)
    for path in sorted(found, key=len, reverse=True):
        text = text.replace(path, found[path])
    return text


def redacted_config(cfg: Any, resolve: bool) -> Any:
    """A copy of an OmegaConf config (resolved, or with its interpolations kept) with secrets redacted."""
    from omegaconf import OmegaConf

    container = OmegaConf.to_container(cfg, resolve=resolve, throw_on_missing=False)
    return OmegaConf.create(redact(container))


def machine_paths_in(data: Any) -> list[str]:
    """Every absolute path among the strings of nested data (a config's data folder, local model...)."""
    if isinstance(data, dict):
        return [p for v in data.values() for p in machine_paths_in(v)]
    if isinstance(data, list | tuple):
        return [p for v in data for p in machine_paths_in(v)]
    return [data] if isinstance(data, str) and is_machine_path(data) else []
