"""Pushing a run's model to the Hugging Face Hub with the ``huggingface_hub`` API (no git, no git-lfs).

The upload is *staged* first: ``<run_dir>/hub_upload/`` receives exactly the files that go up (the
safetensors weights, config.json with the label names, tokenizer files, ``training_config.yaml`` and
the model card as ``README.md``); the weights are hard-linked where possible, the rest copied. A dry run (and any push while
``HF_HUB_OFFLINE`` is set) stops there and lists the folder. Pickled files (``*.bin``, ``*.pt``, ...)
are never staged.

The token comes from ``HF_TOKEN`` or the user's ``hf auth login``; it is passed to the API only, never
written, logged or printed, and the staged files are checked not to contain it.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ner_experiments.errors import NerExperimentError
from ner_experiments.offline import is_network_error

log = logging.getLogger(__name__)

UPLOAD_DIR = "hub_upload"
# Files of model/ that are uploaded; everything else (training_args.bin, optimizer state, ...) stays local.
MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
    "training_config.yaml",
)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
LOGIN_HINT = "log in with `hf auth login` (or set HF_TOKEN to a token with write access)"


class PublishError(NerExperimentError):
    """The model cannot be published (no token, the Hub refused or cannot be reached, an incomplete run)."""


@dataclass
class PushResult:
    """What a push did: the staged folder and its files, and whether (and where) they were uploaded."""

    repo_id: str
    folder: Path
    files: list[str] = field(default_factory=list)
    uploaded: bool = False
    url: str | None = None
    reason: str | None = None  # why nothing was uploaded (dry run, offline, error)


def resolve_token() -> str | None:
    """The Hub token: ``HF_TOKEN``, else the one saved by ``hf auth login``; None when there is none."""
    token = os.environ.get("HF_TOKEN", "").strip()
    if token:
        return token
    try:
        from huggingface_hub import get_token

        return get_token() or None
    except Exception:  # a broken token file is the same as no login for us
        return None


def hub_is_offline() -> bool:
    """True when the user asked for offline mode (``HF_HUB_OFFLINE=1``)."""
    value = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return value in ("1", "true", "yes", "on")


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link the (large) weights, copy everything else, so editing a staged file never edits the run."""
    if src.suffix == ".safetensors":
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)


def check_model_dir(model_dir: Path) -> None:
    """Raise :class:`PublishError` unless ``model_dir`` holds safetensors weights and label names."""
    if not model_dir.is_dir():
        raise PublishError(
            f"no model folder at {model_dir}: publish a finished run directory (it has model/ and metrics.json)"
        )
    if not any(model_dir.glob("*.safetensors")):
        raise PublishError(
            f"{model_dir} has no .safetensors weights: only safetensors are published (no pickles)"
        )
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise PublishError(f"{model_dir} has no config.json: save the model with save_pretrained first")
    id2label = json.loads(config_path.read_text(encoding="utf-8")).get("id2label") or {}
    if not id2label or all(str(v).startswith("LABEL_") for v in id2label.values()):
        raise PublishError(
            f"{config_path} has no label names (id2label): the model was not saved by a NER run"
        )


def stage_upload_folder(
    run_dir: Path, dest: Path | None = None, card_text: str | None = None
) -> tuple[Path, list[str]]:
    """Write the exact folder that would be uploaded and return it with its file names.

    ``card_text`` replaces the run's ``README.md`` in the upload (the run's own files are not changed).
    """
    run_dir = Path(run_dir)
    model_dir = run_dir / "model"
    check_model_dir(model_dir)
    dest = Path(dest) if dest else run_dir / UPLOAD_DIR
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for src in sorted(model_dir.iterdir()):
        if src.is_file() and (
            src.suffix == ".safetensors"
            or src.name in MODEL_FILES
            or src.name == "model.safetensors.index.json"
        ):
            _link_or_copy(src, dest / src.name)
    if not (dest / "training_config.yaml").is_file() and (run_dir / "config.yaml").is_file():
        _link_or_copy(run_dir / "config.yaml", dest / "training_config.yaml")
    if card_text is not None:
        (dest / "README.md").write_text(card_text, encoding="utf-8")
    elif (run_dir / "README.md").is_file():
        shutil.copy2(run_dir / "README.md", dest / "README.md")
    else:
        raise PublishError(
            f"{run_dir} has no model card (README.md): publish it with ner-publish, which writes one"
        )
    files = sorted(p.name for p in dest.iterdir())
    bad = [name for name in files if name.endswith(PICKLE_SUFFIXES)]
    if bad:  # cannot happen with the allow-list above; a last guard against pickles going public
        raise PublishError(f"refusing to upload pickled files {bad}: only safetensors weights are published")
    return dest, files


def _file_contains(path: Path, needle: bytes) -> bool:
    if path.stat().st_size == 0:
        return False
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return m.find(needle) != -1


def check_no_secret(folder: Path, token: str | None) -> None:
    """Raise when any staged file contains the token (it must never be uploaded)."""
    if not token:
        return
    needle = token.encode("utf-8")
    leaked = [p.name for p in sorted(folder.iterdir()) if p.is_file() and _file_contains(p, needle)]
    if leaked:
        raise PublishError(
            f"refusing to upload: {', '.join(leaked)} contain(s) your Hub token; remove it and publish again"
        )


def _redact(text: str, token: str | None) -> str:
    return text.replace(token, "<token>") if token else text


def _http_status(err: BaseException) -> int | None:
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _is_transient(err: BaseException) -> bool:
    status = _http_status(err)
    if status is not None:
        return status >= 500 or status in (408, 429)
    if isinstance(err, ConnectionError | TimeoutError):
        return True
    try:
        import httpx

        if isinstance(err, httpx.TransportError):
            return True
    except ImportError:
        pass
    return is_network_error(err)


def _explain(err: BaseException, repo_id: str, token: str | None) -> str:
    status = _http_status(err)
    first = _redact(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__, token)
    if status == 401:
        return f"the Hub rejected the token (HTTP 401) for {repo_id}: {LOGIN_HINT}"
    if status == 403:
        return f"no write access to {repo_id} (HTTP 403): use a token with write access for that user or organisation"
    if status is not None:
        return f"the Hub refused the upload to {repo_id} (HTTP {status}): {first}"
    return f"cannot upload to {repo_id}: {first}"


def upload_folder_to_hub(
    folder: Path,
    repo_id: str,
    token: str,
    private: bool = False,
    commit_message: str = "Upload NER model",
    api: Any = None,
    max_retries: int = 3,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """``create_repo`` (kept if it exists) then ``upload_folder``, retrying network failures.

    Returns the URL of the commit (or of the repo). Raises :class:`PublishError` with one line.
    """
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    attempts = max(1, int(max_retries) + 1)
    for attempt in range(1, attempts + 1):
        try:
            api.create_repo(repo_id, token=token, private=private, repo_type="model", exist_ok=True)
            info = api.upload_folder(
                repo_id=repo_id,
                folder_path=str(folder),
                repo_type="model",
                commit_message=commit_message,
                token=token,
            )
            url = getattr(info, "commit_url", None) or f"https://huggingface.co/{repo_id}"
            return str(url)
        except Exception as err:
            if not _is_transient(err):
                raise PublishError(_explain(err, repo_id, token)) from None
            if attempt == attempts:
                raise PublishError(
                    f"cannot reach the Hub to upload to {repo_id} after {attempts} attempts "
                    f"({_redact(type(err).__name__, token)}): check the connection and publish again with "
                    f"ner-publish; the local run is unchanged"
                ) from None
            wait = min(30.0, 2.0 ** (attempt - 1))
            log.warning(
                "upload to %s failed (%s); retrying in %.0f s (%d/%d)",
                repo_id,
                type(err).__name__,
                wait,
                attempt,
                attempts - 1,
            )
            sleep(wait)
    raise AssertionError("unreachable")


def describe_folder(folder: Path, files: list[str]) -> str:
    """The staged folder as lines of ``size  name``."""
    lines = [f"{folder}/"]
    for name in files:
        size = (folder / name).stat().st_size
        lines.append(f"  {size:>12,d}  {name}")
    return "\n".join(lines)


def publish_run(
    run_dir: Path,
    repo_id: str,
    private: bool = False,
    dry_run: bool = False,
    max_retries: int = 3,
    card_text: str | None = None,
    commit_message: str | None = None,
    api: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PushResult:
    """Stage a run's model and upload it to ``repo_id``; raises :class:`PublishError` on failure.

    Dry run, or ``HF_HUB_OFFLINE=1``: the folder is staged and listed, nothing is uploaded, no token needed.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    run_dir = Path(run_dir)
    if not repo_id:
        raise PublishError("no repo id: give one, e.g. --repo-id your-name/bengali-ner (or hub.repo_id=...)")
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise PublishError(
            f"{repo_id!r} is not a valid Hub repo id: use <user or org>/<name>, e.g. me/bengali-ner"
        ) from None
    if "/" not in repo_id:
        raise PublishError(f"repo id {repo_id!r} needs a namespace: use <user or org>/{repo_id}")
    offline = hub_is_offline()
    token = None
    if not dry_run and not offline:
        token = resolve_token()
        if not token:
            raise PublishError(f"no Hugging Face token found, nothing uploaded: {LOGIN_HINT}")
    folder, files = stage_upload_folder(run_dir, card_text=card_text)
    result = PushResult(repo_id=repo_id, folder=folder, files=files)
    if dry_run or offline:
        result.reason = "dry run" if dry_run else "HF_HUB_OFFLINE is set"
        return result
    check_no_secret(folder, token)
    message = commit_message or f"Upload NER model from run {run_dir.parent.name}/{run_dir.name}"
    result.url = upload_folder_to_hub(folder, repo_id, token, private, message, api, max_retries, sleep)  # type: ignore[arg-type]
    result.uploaded = True
    return result


def push_run(run_dir: Path, hub_cfg: Any, api: Any = None, raise_errors: bool = False) -> PushResult:
    """Publish a finished run as ``hub.*`` says; called by training when ``hub.push=true``.

    A failed push does not fail the finished run: the error is printed as one line with the command
    that retries it, and the run's files are left as they are (``raise_errors=True`` raises instead).
    """
    run_dir = Path(run_dir)
    repo_id = str(hub_cfg.repo_id or "")
    try:
        result = publish_run(
            run_dir,
            repo_id,
            private=bool(hub_cfg.private),
            dry_run=bool(hub_cfg.dry_run),
            max_retries=int(getattr(hub_cfg, "max_retries", 3) or 0),
            api=api,
        )
    except PublishError as err:
        if raise_errors:
            raise
        log.error("publishing failed: %s", err)
        print(f"error: {err}", file=sys.stderr)
        print(
            f"the run is complete in {run_dir}; publish it later with: ner-publish {run_dir} --repo-id {repo_id or 'me/name'}",
            file=sys.stderr,
        )
        return PushResult(repo_id=repo_id, folder=run_dir / UPLOAD_DIR, reason=str(err))
    report_push(result)
    return result


def report_push(result: PushResult) -> None:
    """Print what was staged and where it went."""
    if result.uploaded:
        print(f"uploaded {len(result.files)} files to https://huggingface.co/{result.repo_id} ({result.url})")
    else:
        print(f"{result.reason}: nothing uploaded to {result.repo_id}; the folder that would be uploaded:")
    print(describe_folder(result.folder, result.files))
