"""Pushing a run's model to the Hugging Face Hub with the ``huggingface_hub`` API (no git, no git-lfs).

The upload is *staged* first: ``<run_dir>/hub_upload/`` receives exactly the files that go up (the
safetensors weights, config.json with the label names, tokenizer files, ``training_config.yaml`` and
the model card as ``README.md``); the weights are hard-linked where possible, the rest copied. A dry run
stops there and lists the folder. Pickled files (``*.bin``, ``*.pt``, ...) are never staged, and passwords in
URLs of the training config (an Optuna storage URL) are redacted.

Training calls :func:`check_push_possible` at start-up, so a push that cannot happen (no token, offline,
no write access) is refused before hours of training, and :func:`push_run` at the end, which raises
:class:`PushFailedError` with the ``ner-publish`` command that retries a failed upload.

The token comes from ``HF_TOKEN`` or the user's ``hf auth login``; it is passed to the API only, never
written, logged or printed, and the staged files are checked not to contain it (nor ``WANDB_API_KEY``).
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import re
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ner_experiments.errors import PublishError, PushFailedError, PushNotPossibleError
from ner_experiments.offline import hub_is_offline, is_network_error

__all__ = [
    "PublishError",
    "PushFailedError",
    "PushNotPossibleError",
    "PushResult",
    "check_push_possible",
    "check_write_access",
    "publish_run",
    "push_run",
    "stage_upload_folder",
    "upload_folder_to_hub",
]

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
LOGIN_HINT = "log in with `hf auth login`, or set HF_TOKEN to a token with write access"
DRY_RUN_HINT = "or add hub.dry_run=true to train and stage the upload now, and publish later with ner-publish"
# Loggers that repeat each HTTP request and retry; our own retry line replaces them during Hub calls.
HUB_CLIENT_LOGGERS = ("huggingface_hub", "httpx", "httpx2", "httpcore")
ORG_ROLES_THAT_CREATE = ("admin", "write", "contributor")
URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s/:@'\"]+):[^\s@'\"/]+@")


@dataclass
class PushResult:
    """What a push did: the staged folder and its files, and whether (and where) they were uploaded."""

    repo_id: str
    folder: Path
    files: list[str] = field(default_factory=list)
    uploaded: bool = False
    url: str | None = None
    reason: str | None = None  # why nothing was uploaded (a dry run)


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
    for name in ("training_config.yaml", "README.md"):
        _redact_url_passwords(dest / name)
    files = sorted(p.name for p in dest.iterdir())
    bad = [name for name in files if name.endswith(PICKLE_SUFFIXES)]
    if bad:  # cannot happen with the allow-list above; a last guard against pickles going public
        raise PublishError(f"refusing to upload pickled files {bad}: only safetensors weights are published")
    return dest, files


def _redact_url_passwords(path: Path) -> None:
    """Hide the password of ``scheme://user:password@host`` URLs (a sweep's Optuna storage) in a staged file."""
    if not path.is_file():
        return
    text = path.read_text(encoding="utf-8")
    redacted = URL_PASSWORD.sub(r"\1:<redacted>@", text)
    if redacted != text:
        path.unlink()  # a new file, so a link to the run's own copy is never edited
        path.write_text(redacted, encoding="utf-8")


def _file_contains(path: Path, needle: bytes) -> bool:
    if path.stat().st_size == 0:
        return False
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return m.find(needle) != -1


def check_no_secret(folder: Path, token: str | None) -> None:
    """Raise when a staged file contains the Hub token or ``WANDB_API_KEY`` (they must never be uploaded)."""
    secrets = {"your Hub token": token, "your WANDB_API_KEY": os.environ.get("WANDB_API_KEY", "").strip()}
    for what, secret in secrets.items():
        if not secret or len(secret) < 8:  # a too short value would match by chance
            continue
        needle = secret.encode("utf-8")
        leaked = [p.name for p in sorted(folder.iterdir()) if p.is_file() and _file_contains(p, needle)]
        if leaked:
            raise PublishError(
                f"refusing to upload: {', '.join(leaked)} contain(s) {what}; remove it and publish again"
            )


def _redact(text: str, token: str | None) -> str:
    return text.replace(token, "<token>") if token else text


def _first_line(err: BaseException, token: str | None) -> str:
    text = str(err).strip()
    return _redact(text.splitlines()[0] if text else type(err).__name__, token)


def _http_status(err: BaseException) -> int | None:
    response = getattr(err, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _short_reason(err: BaseException) -> str:
    status = _http_status(err)
    return f"HTTP {status}" if status is not None else type(err).__name__


def _is_transport_error(err: BaseException) -> bool:
    # huggingface_hub 1.x speaks httpx, 2.x httpx2; look only at the ones already imported.
    for name in ("httpx", "httpx2"):
        module = sys.modules.get(name)
        transport_error = getattr(module, "TransportError", None)
        if isinstance(transport_error, type) and isinstance(err, transport_error):
            return True
    return False


def _is_transient(err: BaseException) -> bool:
    status = _http_status(err)
    if status is not None:
        return status >= 500 or status in (408, 429)
    if isinstance(err, ConnectionError | TimeoutError) or _is_transport_error(err):
        return True
    return is_network_error(err)


def _explain(err: BaseException, repo_id: str, token: str | None) -> str:
    status = _http_status(err)
    if status == 401:
        return f"the Hub rejected the token (HTTP 401) for {repo_id}: {LOGIN_HINT}"
    if status == 403:
        return f"no write access to {repo_id} (HTTP 403): use a token with write access for that user or organisation"
    if status is not None:
        return f"the Hub refused the upload to {repo_id} (HTTP {status}): {_first_line(err, token)}"
    return f"cannot upload to {repo_id}: {_first_line(err, token)}"


@contextmanager
def quiet_hub_client_logs() -> Iterator[None]:
    """Silence huggingface_hub's own retry warnings and the HTTP client's request lines for a while.

    Without this, each failed request is printed by the HTTP client, twice by huggingface_hub (its own
    handler and the root logger) and once more by our retry loop.
    """
    loggers = [logging.getLogger(name) for name in HUB_CLIENT_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _hub_api(api: Any) -> Any:
    if api is not None:
        return api
    from huggingface_hub import HfApi

    return HfApi()


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

    Each retry is one warning line (huggingface_hub's own per-request retries are not printed).
    Returns the URL of the commit (or of the repo). Raises :class:`PublishError` with one line.
    """
    api = _hub_api(api)
    attempts = max(1, int(max_retries) + 1)
    log.info("uploading %s to %s", folder, repo_id)
    for attempt in range(1, attempts + 1):
        try:
            with quiet_hub_client_logs():
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
                what = "the Hub kept failing" if _http_status(err) else "cannot reach the Hub"
                raise PublishError(
                    f"{what} to upload to {repo_id} after {attempts} attempts ({_short_reason(err)}): "
                    "check the connection and publish again; the local run is unchanged"
                ) from None
            wait = min(30.0, 2.0 ** (attempt - 1))
            log.warning(
                "upload to %s failed (%s); retry %d of %d in %.0f s",
                repo_id,
                _short_reason(err),
                attempt,
                attempts - 1,
                wait,
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


def check_repo_id(repo_id: str) -> None:
    """Raise :class:`PublishError` unless ``repo_id`` is a valid ``<user or org>/<name>``."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

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


# --- the start-up check of hub=push ---------------------------------------------------------------


def check_push_possible(hub_cfg: Any, api: Any = None) -> None:
    """Refuse a ``hub=push`` that could not upload at the end of the run, before any data or model loads.

    Nothing to check when ``hub.push`` is false. Otherwise ``hub.repo_id`` must be valid, and unless
    ``hub.dry_run`` (which needs no token or network): ``HF_HUB_OFFLINE`` must not be set, a token must
    exist, and the Hub must confirm that it may write to the repo or create it. Raises
    :class:`PushNotPossibleError` with one line that says what to do.
    """
    if not getattr(hub_cfg, "push", False):
        return
    repo_id = str(getattr(hub_cfg, "repo_id", None) or "")
    try:
        check_repo_id(repo_id)
    except PublishError as err:
        raise PushNotPossibleError(str(err)) from None
    if getattr(hub_cfg, "dry_run", False):
        return
    refused = f"hub=push to {repo_id} refused before training: "
    problems = []
    if hub_is_offline():
        problems.append("HF_HUB_OFFLINE=1 is set (unset it to upload)")
    token = resolve_token()
    if not token:
        problems.append(f"no Hugging Face token was found ({LOGIN_HINT})")
    if problems:
        raise PushNotPossibleError(f"{refused}{'; '.join(problems)}; {DRY_RUN_HINT}")
    try:
        check_write_access(repo_id, str(token), api)
    except PushNotPossibleError as err:
        raise PushNotPossibleError(f"{refused}{err}") from None


def check_write_access(repo_id: str, token: str, api: Any = None) -> None:
    """Raise :class:`PushNotPossibleError` unless ``token`` may write to ``repo_id`` or create it.

    ``auth_check(write=True)`` answers for an existing repo. Only when it says no (or that the repo is
    missing) is ``whoami`` asked (it is rate-limited): a read-only token, or, for a missing repo, whether
    the token may create repos in its namespace (your user, an organisation role, fine-grained scopes).
    """
    api = _hub_api(api)
    with quiet_hub_client_logs():
        try:
            api.auth_check(repo_id, repo_type="model", token=token, write=True)
            return
        except Exception as err:
            denied = err
        if not (_is_missing_repo(denied) or _is_no_write_access(denied)):
            raise _access_error(denied, repo_id, token, user=None) from None  # 401, network, other
        try:
            me = api.whoami(token=token)
        except Exception as err:
            raise _access_error(err, repo_id, token, user=None) from None
    user = str(me.get("name") or "unknown")
    if _token_role(me) == "read":
        raise PushNotPossibleError(
            f"your Hugging Face token (user {user}) is read-only, so it cannot push to {repo_id}: create "
            "a token with write access at https://huggingface.co/settings/tokens and use it (HF_TOKEN or "
            f"`hf auth login`), {DRY_RUN_HINT}"
        )
    if not _is_missing_repo(denied):
        raise _access_error(denied, repo_id, token, user) from None
    refusal = _creation_refusal(me, repo_id.split("/")[0])
    if refusal:
        raise PushNotPossibleError(
            f"{repo_id} does not exist (or is private to others) and your token (user {user}) cannot create "
            f"it: {refusal}; use hub.repo_id={user}/{repo_id.split('/', 1)[1]} or a repo you can write to"
        )


def _token_role(me: dict[str, Any]) -> str | None:
    access = ((me.get("auth") or {}).get("accessToken")) or {}
    role = access.get("role")
    return str(role) if role else None


def _is_missing_repo(err: BaseException) -> bool:
    """True for "no such repo" (a gated repo exists: that is no access, not missing)."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if isinstance(err, GatedRepoError):
        return False
    return isinstance(err, RepositoryNotFoundError) or _http_status(err) == 404


def _is_no_write_access(err: BaseException) -> bool:
    """True for "the repo exists and you may not write to it" (a gated repo counts)."""
    from huggingface_hub.errors import GatedRepoError

    return isinstance(err, GatedRepoError) or _http_status(err) == 403


def _creation_refusal(me: dict[str, Any], namespace: str) -> str | None:
    """Why whoami's token may not create a repo under ``namespace``; None when it may (or whoami cannot tell)."""
    wanted = namespace.lower()
    if _token_role(me) == "fineGrained":
        scoped = ((me.get("auth") or {}).get("accessToken") or {}).get("fineGrained", {}).get("scoped")
        if scoped is None:
            return None
        for entry in scoped:
            if str((entry.get("entity") or {}).get("name", "")).lower() == wanted:
                if "repo.write" in (entry.get("permissions") or []):
                    return None
        return f"your fine-grained token has no repo.write permission for {namespace!r}"
    if str(me.get("name", "")).lower() == wanted:
        return None
    orgs = {str(o.get("name", "")).lower(): o for o in me.get("orgs") or []}
    if wanted not in orgs:
        names = ", ".join(str(o.get("name")) for o in orgs.values()) or "none"
        return f"{namespace!r} is neither your user nor one of your organisations ({names})"
    role = orgs[wanted].get("roleInOrg")
    if role is None or role in ORG_ROLES_THAT_CREATE:
        return None
    return f"your role in organisation {namespace!r} is {role!r}, which cannot create repos"


def _access_error(err: BaseException, repo_id: str, token: str, user: str | None) -> Exception:
    """One line for a failed auth_check / whoami; other errors (bugs) are returned as they are."""
    status = _http_status(err)
    you = f"your token (user {user})" if user else "your token"
    yours = f"{user or 'your-name'}/{repo_id.split('/', 1)[-1]}"
    if _is_no_write_access(err):
        return PushNotPossibleError(
            f"{you} has no write access to the existing repo {repo_id}: use a repo you can write to, e.g. "
            f"hub.repo_id={yours}, or ask its owner for write access"
        )
    if status == 401:
        return PushNotPossibleError(f"the Hub rejected your Hugging Face token (HTTP 401): {LOGIN_HINT}")
    if _is_transient(err) and status is not None:
        return PushNotPossibleError(
            f"the Hub failed to check write access to {repo_id} (HTTP {status}): try again later, "
            f"{DRY_RUN_HINT}"
        )
    if _is_transient(err):
        return PushNotPossibleError(
            f"cannot reach the Hub to check write access to {repo_id} ({_short_reason(err)}): check the "
            f"connection (and HF_ENDPOINT) and start again, {DRY_RUN_HINT}"
        )
    if status is not None:
        return PushNotPossibleError(
            f"the Hub refused the check of write access to {repo_id} (HTTP {status}: {_first_line(err, token)})"
        )
    return err


# --- publishing ------------------------------------------------------------------------------------


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

    Dry run: the folder is staged and listed, nothing is uploaded, no token is needed. With
    ``HF_HUB_OFFLINE=1`` set, anything but a dry run is refused (nothing could be uploaded).
    """
    run_dir = Path(run_dir)
    check_repo_id(repo_id)
    token = resolve_token()
    if not dry_run:
        if hub_is_offline():
            raise PublishError(
                f"HF_HUB_OFFLINE=1 is set, so nothing can be uploaded to {repo_id}: unset HF_HUB_OFFLINE "
                "to publish, or use --dry-run to only write and list the upload folder"
            )
        if not token:
            raise PublishError(f"no Hugging Face token found, nothing uploaded: {LOGIN_HINT}")
    folder, files = stage_upload_folder(run_dir, card_text=card_text)
    check_no_secret(folder, token)
    result = PushResult(repo_id=repo_id, folder=folder, files=files)
    if dry_run:
        result.reason = "dry run"
        return result
    message = commit_message or f"Upload NER model from run {run_dir.parent.name}/{run_dir.name}"
    result.url = upload_folder_to_hub(folder, repo_id, str(token), private, message, api, max_retries, sleep)
    result.uploaded = True
    return result


def retry_command(run_dir: Path, repo_id: str, private: bool = False) -> str:
    """The ``ner-publish`` command that publishes ``run_dir`` to ``repo_id`` (quoted for a shell)."""
    parts = ["ner-publish", shlex.quote(str(run_dir)), "--repo-id", shlex.quote(repo_id or "me/name")]
    return " ".join(parts + (["--private"] if private else []))


def push_run(run_dir: Path, hub_cfg: Any, api: Any = None) -> PushResult:
    """Publish a finished run as ``hub.*`` says; training calls it after ``metrics.json`` is written.

    A failed upload raises :class:`PushFailedError` (exit code 3): one line with the reason, where the
    model is, and the ``ner-publish`` command that retries it. The run's files are left as they are.
    """
    run_dir = Path(run_dir)
    repo_id = str(hub_cfg.repo_id or "")
    private = bool(getattr(hub_cfg, "private", False))
    try:
        result = publish_run(
            run_dir,
            repo_id,
            private=private,
            dry_run=bool(getattr(hub_cfg, "dry_run", False)),
            max_retries=int(getattr(hub_cfg, "max_retries", 3) or 0),
            api=api,
        )
    except (PublishError, OSError) as err:
        command = retry_command(run_dir, repo_id, private)
        model_dir = run_dir / "model"
        kept = f"The model is saved in {model_dir}" if model_dir.is_dir() else f"The run is in {run_dir}"
        reason = _first_line(err, resolve_token()) if isinstance(err, OSError) else str(err)
        raise PushFailedError(
            f"upload to {repo_id} failed: {reason}. {kept}; retry with: {command}", retry_command=command
        ) from None
    report_push(result)
    return result


def report_push(result: PushResult) -> None:
    """Print what was staged and where it went."""
    if result.uploaded:
        print(f"uploaded {len(result.files)} files to https://huggingface.co/{result.repo_id} ({result.url})")
    else:
        print(f"{result.reason}: nothing uploaded to {result.repo_id}; the folder that would be uploaded:")
    print(describe_folder(result.folder, result.files))
