"""Pushing a run's model to the Hugging Face Hub with the ``huggingface_hub`` API (no git, no git-lfs).

The upload is staged in ``<run_dir>/hub_upload/`` first (a dry run stops there): no pickles, URL passwords
redacted, no Hub token (passed to the API only) or ``WANDB_API_KEY``. Training calls
:func:`check_push_possible` at start-up, before hours of training, and :func:`push_run` at the end.
"""

from __future__ import annotations

import logging
import mmap
import os
import shlex
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ner_experiments.errors import PublishError, PushFailedError, PushNotPossibleError
from ner_experiments.offline import hub_is_offline, is_network_error
from ner_experiments.redaction import (
    machine_paths_in,
    redact_text,
    replace_machine_paths,
    without_machine_paths,
)

log = logging.getLogger(__name__)

UPLOAD_DIR = "hub_upload"
# Files of model/ uploaded besides the weights; the rest (training_args.bin, optimizer state) stays local.
MODEL_FILES = frozenset(
    """config.json generation_config.json model.safetensors.index.json tokenizer.json tokenizer_config.json
    special_tokens_map.json added_tokens.json vocab.txt vocab.json merges.txt sentencepiece.bpe.model
    spiece.model training_config.yaml""".split()
)
LOGIN_HINT = "log in with `hf auth login`, or set HF_TOKEN to a token with write access"
DRY_RUN_HINT = "or add hub.dry_run=true to train and stage the upload now, and publish later with ner-publish"
# Loggers that repeat each HTTP request and retry; our own retry line replaces them during Hub calls.
HUB_CLIENT_LOGGERS = ("huggingface_hub", "httpx", "httpx2", "httpcore")


@dataclass
class PushResult:
    """What a push did: the staged folder and its files, and where they were uploaded."""

    repo_id: str
    folder: Path
    files: list[str] = field(default_factory=list)
    url: str | None = None  # None: nothing was uploaded (a dry run)


def resolve_token() -> str | None:
    """The Hub token: ``HF_TOKEN``, else the one saved by ``hf auth login``; None when there is none."""
    from huggingface_hub import get_token

    try:
        return get_token() or None
    except Exception:  # a broken token file is the same as no login for us
        return None


# --- staging ---------------------------------------------------------------------------------------


def stage_upload_folder(run_dir: Path, card_text: str | None = None) -> tuple[Path, list[str]]:
    """Write the exact folder that would be uploaded and return it with its file names.

    ``card_text`` replaces the run's ``README.md`` in the upload (the run's own files are not changed).
    """
    run_dir = Path(run_dir)
    model_dir, dest = run_dir / "model", run_dir / UPLOAD_DIR
    if not any(model_dir.glob("*.safetensors")):
        raise PublishError(f"{model_dir} has no .safetensors weights: only safetensors are published")
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for src in sorted(model_dir.iterdir()):  # an allow-list: pickled files never go up
        if src.suffix == ".safetensors":
            _hard_link_or_copy(src, dest / src.name)
        elif src.name in MODEL_FILES:
            shutil.copy2(src, dest / src.name)
    if not (dest / "training_config.yaml").is_file() and (run_dir / "config.yaml").is_file():
        shutil.copy2(run_dir / "config.yaml", dest / "training_config.yaml")
    if card_text is not None:
        (dest / "README.md").write_text(card_text, encoding="utf-8")
    elif (run_dir / "README.md").is_file():
        shutil.copy2(run_dir / "README.md", dest / "README.md")
    else:
        raise PublishError(f"{run_dir} has no model card (README.md): publish it without --keep-card")
    make_shareable(dest, run_dir)
    return dest, sorted(p.name for p in dest.iterdir())


def _hard_link_or_copy(src: Path, dst: Path) -> None:
    """Link the (large) weights where the file system allows; the other staged files are copies."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def make_shareable(dest: Path, run_dir: Path) -> None:
    """Apply the rules of :mod:`ner_experiments.redaction` to a staged folder: no secret in any text file,
    and no path of this machine: ``training_config.yaml`` names folders (data, a local model, outputs) by
    their name, and every other text file has those paths (and the run dir's) replaced the same way."""
    from omegaconf import OmegaConf

    config_path = dest / "training_config.yaml"
    paths: list[str] = [str(run_dir.resolve())]
    if config_path.is_file():
        config = OmegaConf.to_container(OmegaConf.load(config_path), resolve=False)
        paths += machine_paths_in(config)
        OmegaConf.save(OmegaConf.create(without_machine_paths(config)), config_path)
    for path in sorted(dest.iterdir()):
        if path.suffix in (".json", ".md", ".txt", ".yaml") and path.is_file():
            text = path.read_text(encoding="utf-8")
            clean = replace_machine_paths(redact_text(text), paths)
            if clean != text:
                path.write_text(clean, encoding="utf-8")


def check_no_secret(folder: Path, token: str | None) -> None:
    """Raise when a staged file contains the Hub token or ``WANDB_API_KEY`` (they must never be uploaded)."""
    secrets = {"your Hub token": token, "your WANDB_API_KEY": os.environ.get("WANDB_API_KEY", "").strip()}
    for what, secret in secrets.items():
        if not secret or len(secret) < 8:  # a too short value would match by chance
            continue
        leaked = [p.name for p in sorted(folder.iterdir()) if _file_contains(p, secret.encode("utf-8"))]
        if leaked:
            raise PublishError(
                f"refusing to upload: {', '.join(leaked)} contain(s) {what}; remove it and publish again"
            )


def _file_contains(path: Path, needle: bytes) -> bool:
    if path.stat().st_size == 0:
        return False
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:  # weights: no copy
        return m.find(needle) != -1


# --- talking to the Hub ----------------------------------------------------------------------------


def _http_status(err: BaseException) -> int | None:
    status = getattr(getattr(err, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _short_reason(err: BaseException) -> str:
    status = _http_status(err)
    return f"HTTP {status}" if status is not None else type(err).__name__


def _first_line(err: BaseException, token: str | None) -> str:
    text = str(err).strip()
    line = text.splitlines()[0] if text else type(err).__name__
    return line.replace(token, "<token>") if token else line


def _is_transient(err: BaseException) -> bool:
    """True for a failure worth retrying: a 5xx, 408 or 429 answer, or no answer at all."""
    status = _http_status(err)
    if status is not None:
        return status >= 500 or status in (408, 429)
    # httpx's (and httpx2's) TransportError covers connection, timeout and protocol failures.
    if any(cls.__name__ == "TransportError" for cls in type(err).__mro__):
        return True
    return isinstance(err, ConnectionError | TimeoutError) or is_network_error(err)


def _hub_failure(err: BaseException, doing: str, repo_id: str, token: str | None) -> str | None:
    """One line for the Hub's refusal (or silence) while ``doing`` ``repo_id``; None for other errors."""
    status = _http_status(err)
    if status == 401:
        return f"the Hub rejected your Hugging Face token (HTTP 401): {LOGIN_HINT}"
    if status == 403:
        return f"no write access to {repo_id} (HTTP 403): use a token with write access to its namespace"
    if _is_transient(err):
        who = "the Hub failed" if status else "cannot reach the Hub"
        return f"{who} to {doing} {repo_id} ({_short_reason(err)})"
    if status is not None:
        return f"the Hub refused to {doing} {repo_id} (HTTP {status}: {_first_line(err, token)})"
    return None


@contextmanager
def quiet_hub_client_logs() -> Iterator[None]:
    """Silence huggingface_hub's retry warnings and the HTTP client's request lines for a while."""
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
    from huggingface_hub import HfApi

    return HfApi() if api is None else api


# --- the start-up check of hub=push ----------------------------------------------------------------


def check_repo_id(repo_id: str, error: type[PublishError] = PublishError) -> None:
    """Raise ``error`` unless ``repo_id`` is a valid ``<user or org>/<name>``."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise error(
            f"{repo_id!r} is not a valid Hub repo id: use <user or org>/<name>, e.g. me/bengali-ner"
        ) from None
    if "/" not in repo_id:
        raise error(f"repo id {repo_id!r} needs a namespace: use <user or org>/{repo_id}")


def check_push_possible(hub_cfg: Any, api: Any = None) -> None:
    """Raise :class:`PushNotPossibleError` (one line) for a ``hub=push`` that could not upload later.

    ``hub.repo_id`` must be valid; unless ``hub.dry_run``, offline mode must be off, a token must exist,
    and the Hub must confirm that it may write to the repo or create it.
    """
    if not getattr(hub_cfg, "push", False):
        return
    repo_id = str(getattr(hub_cfg, "repo_id", None) or "")
    check_repo_id(repo_id, PushNotPossibleError)
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

    ``auth_check(write=True)`` answers; only when it refuses is ``whoami`` (rate-limited) asked. A missing
    repo may be created in the namespace of the user or one of their organisations; rarer refusals (an
    organisation role, a fine-grained token's scopes) come as the Hub's 403 at push time.
    """
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    api = _hub_api(api)
    with quiet_hub_client_logs():
        try:
            api.auth_check(repo_id, repo_type="model", token=token, write=True)
            return
        except Exception as err:
            denied = err
        status = _http_status(denied)
        no_write = isinstance(denied, GatedRepoError) or status == 403  # a gated repo exists
        missing = not no_write and (isinstance(denied, RepositoryNotFoundError) or status == 404)
        if not (no_write or missing):
            raise _check_failure(denied, repo_id, token) from None  # 401, no network, another answer
        try:
            me = api.whoami(token=token)
        except Exception as err:
            raise _check_failure(err, repo_id, token) from None
    _refuse_for_user(me, repo_id, missing)


def _check_failure(err: BaseException, repo_id: str, token: str) -> BaseException:
    """:class:`PushNotPossibleError` for a failed auth_check / whoami; a bug is returned as it is."""
    line = _hub_failure(err, "check write access to", repo_id, token)
    if line is None:
        return err
    if _is_transient(err):
        line += f": check the connection (and HF_ENDPOINT) and try again later, {DRY_RUN_HINT}"
    return PushNotPossibleError(line)


def _refuse_for_user(me: dict[str, Any], repo_id: str, missing: bool) -> None:
    """Raise why the token whoami described (``me``) may not write to ``repo_id``, unless it may create it."""
    user = str(me.get("name") or "unknown")
    namespace, name = repo_id.split("/", 1)
    if ((me.get("auth") or {}).get("accessToken") or {}).get("role") == "read":
        raise PushNotPossibleError(
            f"your Hugging Face token (user {user}) is read-only, so it cannot push to {repo_id}: use one "
            f"with write access (https://huggingface.co/settings/tokens), {DRY_RUN_HINT}"
        )
    if not missing:
        raise PushNotPossibleError(
            f"your token (user {user}) has no write access to the existing repo {repo_id}: use a repo you "
            f"can write to, e.g. hub.repo_id={user}/{name}, or ask its owner for write access"
        )
    orgs = [str(org.get("name")) for org in me.get("orgs") or []]
    if namespace.lower() not in {n.lower() for n in [user, *orgs]}:  # the Hub ignores case here
        raise PushNotPossibleError(
            f"{repo_id} does not exist (or is private to others) and your token (user {user}) cannot create "
            f"it: {namespace!r} is neither your user nor one of your organisations "
            f"({', '.join(orgs) or 'none'}); use hub.repo_id={user}/{name} or a repo you can write to"
        )


# --- publishing ------------------------------------------------------------------------------------


def publish_run(
    run_dir: Path,
    repo_id: str,
    private: bool = False,
    dry_run: bool = False,
    max_retries: int = 3,
    card_text: str | None = None,
    api: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PushResult:
    """Stage a run's model and upload it to ``repo_id`` (``create_repo``, then ``upload_folder``).

    A dry run only stages the folder and needs no token. Network failures are retried ``max_retries``
    times. Raises :class:`PublishError` with one line.
    """
    run_dir = Path(run_dir)
    check_repo_id(repo_id)
    token = resolve_token()
    if not dry_run and hub_is_offline():
        raise PublishError(
            f"HF_HUB_OFFLINE=1 is set, so nothing can be uploaded to {repo_id}: unset HF_HUB_OFFLINE "
            "to publish, or use --dry-run to only write and list the upload folder"
        )
    if not dry_run and not token:
        raise PublishError(f"no Hugging Face token found, nothing uploaded: {LOGIN_HINT}")
    folder, files = stage_upload_folder(run_dir, card_text=card_text)
    check_no_secret(folder, token)
    result = PushResult(repo_id=repo_id, folder=folder, files=files)
    if dry_run:
        return result
    api = _hub_api(api)
    message = f"Upload NER model from run {run_dir.parent.name}/{run_dir.name}"

    def upload() -> str:
        api.create_repo(repo_id, token=token, private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=message, token=token)
        return str(getattr(info, "commit_url", None) or f"https://huggingface.co/{repo_id}")

    log.info("uploading %s to %s", folder, repo_id)
    result.url = _with_retries(upload, repo_id, token, max_retries, sleep)
    return result


def _with_retries(call: Callable[[], str], repo_id: str, token: str | None, retries: int, sleep: Any) -> str:
    """Run ``call``, retrying transient failures with one warning line each (the Hub client is quiet)."""
    attempts = max(1, int(retries) + 1)
    for attempt in range(1, attempts + 1):
        try:
            with quiet_hub_client_logs():
                return call()
        except Exception as err:
            line = _hub_failure(err, "upload to", repo_id, token)
            if not _is_transient(err):
                raise PublishError(line or f"cannot upload to {repo_id}: {_first_line(err, token)}") from None
            if attempt == attempts:
                raise PublishError(f"{line} after {attempts} attempts; check the connection") from None
            reason, wait = _short_reason(err), min(30.0, 2.0 ** (attempt - 1))
            log.warning(
                f"upload to {repo_id} failed ({reason}); retry {attempt} of {attempts - 1} in {wait:.0f} s"
            )
            sleep(wait)
    raise AssertionError("unreachable")


def push_run(run_dir: Path, hub_cfg: Any, api: Any = None) -> PushResult:
    """Publish a finished run as ``hub.*`` says; training calls it after ``metrics.json`` is written.

    A failed upload raises :class:`PushFailedError` (exit code 3): one line with the reason, where the
    model is, and the ``ner-publish`` command that retries it. The run's files are left as they are.
    """
    run_dir = Path(run_dir)
    repo_id, private = str(hub_cfg.repo_id or ""), bool(getattr(hub_cfg, "private", False))
    dry_run, retries = bool(getattr(hub_cfg, "dry_run", False)), int(getattr(hub_cfg, "max_retries", 3) or 0)
    try:
        result = publish_run(run_dir, repo_id, private=private, dry_run=dry_run, max_retries=retries, api=api)
    except (PublishError, OSError) as err:
        command = retry_command(run_dir, repo_id, private)
        saved = f"The model is saved in {run_dir / 'model'}"
        message = f"upload to {repo_id} failed: {err}. {saved}; retry with: {command}"
        raise PushFailedError(message, retry_command=command) from None
    report_push(result)
    return result


def retry_command(run_dir: Path, repo_id: str, private: bool = False) -> str:
    """The ``ner-publish`` command that publishes ``run_dir`` to ``repo_id`` (quoted for a shell)."""
    parts = ["ner-publish", shlex.quote(str(run_dir)), "--repo-id", shlex.quote(repo_id or "me/name")]
    return " ".join(parts + (["--private"] if private else []))


def report_push(result: PushResult) -> None:
    """Print where the staged folder went (or that it is a dry run) and its files with their sizes."""
    if result.url:
        print(f"uploaded {len(result.files)} files to https://huggingface.co/{result.repo_id} ({result.url})")
    else:
        print(f"dry run: nothing uploaded to {result.repo_id}; the folder that would be uploaded:")
    print(f"{result.folder}/")
    for name in result.files:
        print(f"  {(result.folder / name).stat().st_size:>12,d}  {name}")
