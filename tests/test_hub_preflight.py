"""The start-up check of ``hub=push``: refused before any data or model loads when it could not upload.

Unit tests drive :func:`check_push_possible` with a stand-in HfApi raising huggingface_hub's own error
classes; one test runs the real HfApi against a local stand-in of the Hub's HTTP answers; end-to-end
tests run train.py and check it stops within seconds, before any training, with one line.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError
from omegaconf import OmegaConf

from ner_experiments.errors import PushNotPossibleError
from ner_experiments.publishing import push as push_module
from ner_experiments.publishing.push import check_push_possible, check_write_access
from tests.helpers import looks_complete, run_train

TOKEN = "hf_" + "PreflightSecret" + "0123456789abcdef"  # a stand-in, split so it is no token literal
WRITE_USER = {"name": "alice", "orgs": [], "auth": {"accessToken": {"role": "write"}}}


def hub_error(cls: type[HfHubHTTPError], status: int) -> HfHubHTTPError:
    """huggingface_hub's own error class, with a stand-in of the HTTP response it wraps."""
    return cls(
        f"{status} Client Error", response=SimpleNamespace(status_code=status, headers={}, request=None)
    )


class FakeHfApi:
    """whoami answers ``me`` (or raises it); auth_check raises ``auth_error`` unless it is None."""

    def __init__(self, me: dict[str, Any] | Exception = WRITE_USER, auth_error: Exception | None = None):
        self.me = me
        self.auth_error = auth_error
        self.calls: list[tuple[str, Any]] = []

    def whoami(self, token: str | None = None, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("whoami", token))
        if isinstance(self.me, Exception):
            raise self.me
        return self.me

    def auth_check(self, repo_id: str, **kwargs: Any) -> None:
        self.calls.append(("auth_check", (repo_id, kwargs)))
        if self.auth_error is not None:
            raise self.auth_error


def hub(**overrides: Any) -> Any:
    values = {"push": True, "repo_id": "alice/ner", "private": False, "dry_run": False, "max_retries": 0}
    return OmegaConf.create({**values, **overrides})


@pytest.fixture
def online_with_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(push_module, "resolve_token", lambda: TOKEN)


@pytest.fixture
def online_without_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(push_module, "resolve_token", lambda: None)


def refusal(hub_cfg: Any, api: FakeHfApi) -> str:
    with pytest.raises(PushNotPossibleError) as info:
        check_push_possible(hub_cfg, api=api)
    message = str(info.value)
    assert "\n" not in message and TOKEN not in message
    return message


# --- no network: push off, dry run, offline, no token ----------------------------------------------


def test_nothing_is_checked_without_push_or_with_a_dry_run(online_without_token: None) -> None:
    api = FakeHfApi()
    check_push_possible(hub(push=False, repo_id=None), api=api)
    check_push_possible(hub(dry_run=True), api=api)  # a dry run needs no token
    assert api.calls == []


def test_a_dry_run_still_needs_a_valid_repo_id(online_without_token: None) -> None:
    assert "not a valid Hub repo id" in refusal(hub(dry_run=True, repo_id="not a repo"), FakeHfApi())


def test_no_token_is_refused_without_asking_the_hub(online_without_token: None) -> None:
    api = FakeHfApi()
    message = refusal(hub(), api)
    assert "no Hugging Face token" in message and "hf auth login" in message and "hub.dry_run=true" in message
    assert api.calls == []


def test_offline_is_refused_even_with_a_token(
    online_with_token: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    api = FakeHfApi()
    message = refusal(hub(), api)
    assert "HF_HUB_OFFLINE=1 is set" in message and "hub.dry_run=true" in message
    assert "no Hugging Face token" not in message and api.calls == []
    check_push_possible(hub(dry_run=True), api=api)  # offline dry runs are fine


def test_offline_and_no_token_are_reported_together(
    online_without_token: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = refusal(hub(), FakeHfApi())
    assert "HF_HUB_OFFLINE=1 is set" in message and "no Hugging Face token" in message


# --- write access, with the Hub's answers -----------------------------------------------------------


def test_write_access_to_an_existing_repo_passes_without_asking_whoami(online_with_token: None) -> None:
    api = FakeHfApi()
    check_push_possible(hub(), api=api)
    [(name, (repo_id, kwargs))] = api.calls  # whoami is rate-limited: not asked when all is well
    assert (name, repo_id, kwargs["write"], kwargs["token"]) == ("auth_check", "alice/ner", True, TOKEN)


@pytest.mark.parametrize(
    "error",
    [hub_error(HfHubHTTPError, 403), hub_error(GatedRepoError, 403), hub_error(GatedRepoError, 401)],
    ids=["403", "gated-403", "gated-401"],
)
def test_existing_repo_without_write_access_is_refused(online_with_token: None, error: Exception) -> None:
    message = refusal(hub(repo_id="bob/ner"), FakeHfApi(auth_error=error))
    assert "(user alice) has no write access to the existing repo bob/ner" in message
    assert "hub.repo_id=alice/ner" in message


@pytest.mark.parametrize(
    ("me", "repo_id"),
    [
        (WRITE_USER, "alice/new-ner"),
        (WRITE_USER, "Alice/new-ner"),  # namespaces are compared as the Hub does, ignoring case
        # Any organisation of yours: a role or token scope that cannot create is the Hub's 403 at push time.
        ({**WRITE_USER, "orgs": [{"name": "lab", "roleInOrg": "read"}]}, "lab/new-ner"),
    ],
)
def test_missing_repo_in_a_namespace_you_may_create_in_passes(
    online_with_token: None, me: dict[str, Any], repo_id: str
) -> None:
    for status in (404, 401):  # the Hub answers a missing repo with either
        check_push_possible(
            hub(repo_id=repo_id), api=FakeHfApi(me, hub_error(RepositoryNotFoundError, status))
        )


@pytest.mark.parametrize(
    ("orgs", "expected"),
    [
        ([], "'bob' is neither your user nor one of your organisations (none)"),
        ([{"name": "lab", "roleInOrg": "write"}], "one of your organisations (lab)"),
    ],
)
def test_missing_repo_in_someone_elses_namespace_is_refused(
    online_with_token: None, orgs: list[dict[str, str]], expected: str
) -> None:
    api = FakeHfApi({**WRITE_USER, "orgs": orgs}, hub_error(RepositoryNotFoundError, 404))
    message = refusal(hub(repo_id="bob/ner"), api)
    assert message.startswith("hub=push to bob/ner refused before training: bob/ner does not exist")
    assert expected in message and "hub.repo_id=alice/ner" in message


@pytest.mark.parametrize(
    "error",
    [hub_error(HfHubHTTPError, 403), hub_error(RepositoryNotFoundError, 404)],
    ids=["exists", "missing"],
)
def test_read_only_token_is_named_as_the_reason(online_with_token: None, error: Exception) -> None:
    api = FakeHfApi({**WRITE_USER, "auth": {"accessToken": {"role": "read"}}}, error)
    message = refusal(hub(), api)
    assert "(user alice) is read-only" in message and "huggingface.co/settings/tokens" in message
    assert [c[0] for c in api.calls] == ["auth_check", "whoami"]


@pytest.mark.parametrize("failing", ["auth_check", "whoami"])
def test_rejected_token_is_refused(online_with_token: None, failing: str) -> None:
    rejected = hub_error(HfHubHTTPError, 401)
    if failing == "auth_check":
        api = FakeHfApi(auth_error=rejected)
    else:  # the repo is missing, and whoami then rejects the token
        api = FakeHfApi(rejected, hub_error(RepositoryNotFoundError, 404))
    message = refusal(hub(), api)
    assert "rejected your Hugging Face token (HTTP 401)" in message and "hf auth login" in message


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ConnectionError("[Errno 111] Connection refused"), "cannot reach the Hub to check write access"),
        (TimeoutError("timed out"), "cannot reach the Hub to check write access"),
        (hub_error(HfHubHTTPError, 503), "the Hub failed to check write access to alice/ner (HTTP 503)"),
    ],
    ids=["connection", "timeout", "503"],
)
def test_unreachable_hub_is_refused_unless_dry_run(
    online_with_token: None, error: Exception, expected: str
) -> None:
    api = FakeHfApi(auth_error=error)
    message = refusal(hub(), api)
    assert expected in message and "hub.dry_run=true" in message
    check_push_possible(hub(dry_run=True), api=api)


def test_an_unexpected_error_is_not_dressed_up_as_a_user_error(online_with_token: None) -> None:
    with pytest.raises(KeyError):  # a bug, not the user's problem: the traceback is kept
        check_push_possible(hub(), api=FakeHfApi(auth_error=KeyError("name")))


def test_the_check_prints_no_hub_client_lines(online_with_token: None, capsys) -> None:
    import logging

    class ChattyApi(FakeHfApi):
        def auth_check(self, repo_id: str, **kwargs: Any) -> None:
            logging.getLogger("huggingface_hub.utils._http").warning("Retrying in 1s [Retry 1/5].")
            logging.getLogger("httpx2").warning("HTTP Request: GET /api/models/alice/ner/auth-check/write")
            super().auth_check(repo_id, **kwargs)

    check_push_possible(hub(), api=ChattyApi())
    out = capsys.readouterr()
    assert "Retry" not in out.out + out.err and "HTTP Request" not in out.out + out.err


# --- the real HfApi against a local stand-in of the Hub ---------------------------------------------


class StandInHub(http.server.BaseHTTPRequestHandler):
    """Answers whoami-v2 with ``alice``; auth-check/write on alice/* and bob/* the way the Hub does."""

    routes: dict[str, tuple[int, dict[str, str], Any]] = {
        "/api/whoami-v2": (200, {}, WRITE_USER),
        "/api/models/alice/ner/auth-check/write": (404, {"X-Error-Code": "RepoNotFound"}, {"error": "nope"}),
        "/api/models/bob/ner/auth-check/write": (403, {}, {"error": "You don't have write access"}),
        "/api/models/carol/ner/auth-check/write": (404, {"X-Error-Code": "RepoNotFound"}, {"error": "nope"}),
    }

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        status, headers, body = self.routes.get(self.path, (500, {}, {"error": "unexpected"}))
        data = json.dumps(body).encode()
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stand_in_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from huggingface_hub import constants

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandInHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)  # huggingface_hub's side requests stay local too
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()


def test_the_real_client_errors_are_read_as_expected(stand_in_hub: str) -> None:
    from huggingface_hub import HfApi

    api = HfApi(endpoint=stand_in_hub)
    check_write_access("alice/ner", TOKEN, api=api)  # missing, in your own namespace: the push creates it
    with pytest.raises(PushNotPossibleError, match="no write access to the existing repo bob/ner"):
        check_write_access("bob/ner", TOKEN, api=api)
    with pytest.raises(PushNotPossibleError, match="'carol' is neither your user"):
        check_write_access("carol/ner", TOKEN, api=api)


# --- train.py end to end: refused within seconds, before any data or model loads ----------------------

START_UP_SECONDS = 60  # Hydra start-up and the check take ~5 s; generous for a busy 2-core machine


def no_stored_token_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment with no token anywhere: HF_TOKEN empty, HF_HOME (and its token file) in an empty folder."""
    home = tmp_path / "hf_home"
    home.mkdir(exist_ok=True)
    env = {"HF_TOKEN": "", "HUGGING_FACE_HUB_TOKEN": "", "HF_HOME": str(home)}
    env["HF_TOKEN_PATH"] = str(home / "token")
    return {**env, **extra}


def train_with_push(tmp_path: Path, env: dict[str, str], *more: str) -> tuple[Any, float]:
    out = tmp_path / "outputs"
    started = time.monotonic()
    result = run_train(
        "experiment=quickstart",
        "logger=none",
        "trainer.num_train_epochs=1",
        f"paths.output_dir={out}",
        "hub=push",
        "hub.repo_id=me/x",
        *more,
        env=env,
        timeout=300,
    )
    return result, time.monotonic() - started


def assert_refused_before_training(result: Any, seconds: float, tmp_path: Path) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert result.stderr.strip().splitlines() == errors  # no traceback, no warning, only the error
    # What a run prints once it loads data, tokenizes and trains (none of it may appear):
    for sign in ("Data ", "sentences", "tokeniz", "Training", "'loss'", "run dir"):
        assert sign not in result.stdout
    assert looks_complete(tmp_path / "outputs") == [] and not list(tmp_path.glob("**/metrics.json"))
    assert seconds < START_UP_SECONDS
    assert TOKEN not in result.stdout + result.stderr
    return errors[0]


def test_train_refuses_push_without_a_token(tmp_path: Path) -> None:
    result, seconds = train_with_push(tmp_path, no_stored_token_env(tmp_path, HF_HUB_OFFLINE="0"))
    line = assert_refused_before_training(result, seconds, tmp_path)
    assert line.startswith("error: hub=push to me/x refused before training: no Hugging Face token was found")
    assert "hf auth login" in line and "hub.dry_run=true" in line and "HF_HUB_OFFLINE" not in line


def test_train_refuses_push_offline_even_with_a_token(tmp_path: Path) -> None:
    result, seconds = train_with_push(tmp_path, {"HF_TOKEN": TOKEN, "HF_HUB_OFFLINE": "1"})
    line = assert_refused_before_training(result, seconds, tmp_path)
    assert "HF_HUB_OFFLINE=1 is set (unset it to upload)" in line and "hub.dry_run=true" in line
    assert "no Hugging Face token" not in line


def test_train_refuses_push_when_the_hub_cannot_be_reached(tmp_path: Path) -> None:
    # Port 9 (discard) on this machine refuses the connection at once: an unreachable Hub.
    env = {"HF_TOKEN": TOKEN, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}
    result, seconds = train_with_push(tmp_path, env)
    line = assert_refused_before_training(result, seconds, tmp_path)
    assert "cannot reach the Hub to check write access to me/x" in line and "hub.dry_run=true" in line
