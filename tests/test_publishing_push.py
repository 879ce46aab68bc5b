"""Pushing a run: staged folder, a stand-in HfApi that records calls, token handling, retries, dry run,
the error of a push that fails after training, secrets kept out of the upload, offline advice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ner_experiments.errors import NerExperimentError
from ner_experiments.publishing import push as push_module
from ner_experiments.publishing.cli import publish_main
from ner_experiments.publishing.push import PublishError, PushFailedError, publish_run, push_run
from tests.helpers import snapshot

TOKEN = "hf_" + "TestSecretToken" + "1234567890abcdef"  # a stand-in, split so it is no token literal
EXPECTED_FILES = {
    "README.md",
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "training_config.yaml",
}


class FakeResponse:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


class FakeHTTPError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status} from the Hub")
        self.response = FakeResponse(status)


class FakeHfApi:
    """Records create_repo / upload_folder calls, with the uploaded files' contents; can fail first."""

    def __init__(self, failures: list[Exception] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.failures = list(failures or [])
        self.uploaded: dict[str, bytes] = {}

    def create_repo(self, repo_id: str, **kwargs: Any) -> str:
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        if self.failures:
            raise self.failures.pop(0)
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kwargs: Any) -> Any:
        self.calls.append(("upload_folder", kwargs))
        folder = Path(kwargs["folder_path"])
        self.uploaded = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

        class Info:
            commit_url = f"https://huggingface.co/{kwargs['repo_id']}/commit/abc"

        return Info()


@pytest.fixture
def with_token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return TOKEN


@pytest.fixture
def no_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(push_module, "resolve_token", lambda: None)  # ignore a login on this machine


def test_publish_uploads_the_staged_folder_with_private_flag(run_copy: Path, with_token: str, capsys) -> None:
    api = FakeHfApi()
    code = publish_main([str(run_copy), "--repo-id", "me/bengali-ner", "--private"], api=api)
    assert code == 0
    (name1, create), (name2, upload) = api.calls
    assert (name1, name2) == ("create_repo", "upload_folder")
    assert create["repo_id"] == "me/bengali-ner" and create["private"] is True and create["exist_ok"] is True
    assert create["token"] == TOKEN and upload["token"] == TOKEN
    assert upload["repo_id"] == "me/bengali-ner"
    assert run_copy.name in upload["commit_message"]
    assert set(api.uploaded) == EXPECTED_FILES
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in api.uploaded)
    assert all(TOKEN.encode() not in content for content in api.uploaded.values())
    config = json.loads(api.uploaded["config.json"])
    assert config["id2label"]["1"] == "B-PER"
    assert b"me/bengali-ner" in api.uploaded["README.md"]  # the card names the repo it is uploaded to
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err
    assert "uploaded 6 files" in out.out


def test_no_token_uploads_nothing_and_leaves_the_run_untouched(
    run_copy: Path, no_token: None, capsys
) -> None:
    before = snapshot(run_copy)
    api = FakeHfApi()
    code = publish_main([str(run_copy), "--repo-id", "me/bengali-ner"], api=api)
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "hf auth login" in err[0]
    assert api.calls == []
    assert snapshot(run_copy) == before


def test_network_failure_is_retried_then_reported(run_copy: Path, with_token: str) -> None:
    before = {k: v for k, v in snapshot(run_copy).items() if not k.startswith("hub_upload")}
    api = FakeHfApi(failures=[ConnectionError("connection reset")] * 10)
    waits: list[float] = []
    with pytest.raises(PublishError, match="after 3 attempts") as info:
        publish_run(run_copy, "me/bengali-ner", max_retries=2, api=api, sleep=waits.append)
    assert TOKEN not in str(info.value)
    assert [c[0] for c in api.calls] == ["create_repo"] * 3 and waits == [1.0, 2.0]
    after = {k: v for k, v in snapshot(run_copy).items() if not k.startswith("hub_upload")}
    assert after == before


def test_transient_failure_then_success(run_copy: Path, with_token: str) -> None:
    api = FakeHfApi(failures=[FakeHTTPError(503)])
    result = publish_run(run_copy, "me/bengali-ner", api=api, sleep=lambda s: None)
    assert result.url is not None and result.url.endswith("/commit/abc")


def test_rejected_token_is_not_retried(run_copy: Path, with_token: str) -> None:
    api = FakeHfApi(failures=[FakeHTTPError(401)])
    with pytest.raises(PublishError, match="hf auth login"):
        publish_run(run_copy, "me/bengali-ner", api=api, sleep=lambda s: None)
    assert len(api.calls) == 1


def test_dry_run_folder_loads_back_with_from_pretrained(tiny_run: Path, no_token: None, capsys) -> None:
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    # The tiny run was trained with hub=push hub.dry_run=true: training's hook staged this folder.
    folder = tiny_run / push_module.UPLOAD_DIR
    assert {p.name for p in folder.iterdir()} == EXPECTED_FILES
    model = AutoModelForTokenClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.id2label[5] == "B-LOC" and tokenizer.is_fast
    assert (folder / "README.md").read_text(encoding="utf-8").startswith("---\n")


def test_dry_run_lists_the_folder_and_uploads_nothing(
    run_copy: Path, no_token: None, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    api = FakeHfApi()
    assert publish_main([str(run_copy), "--repo-id", "me/bengali-ner", "--dry-run"], api=api) == 0
    out = capsys.readouterr().out
    assert (
        "dry run: nothing uploaded" in out and "model.safetensors" in out and "training_args.bin" not in out
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline, a dry run is still fine
    assert publish_main([str(run_copy), "--repo-id", "me/bengali-ner", "--dry-run"], api=api) == 0
    assert api.calls == []


def test_offline_publish_is_refused_not_silently_skipped(
    run_copy: Path, with_token: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    api = FakeHfApi()
    assert publish_main([str(run_copy), "--repo-id", "me/bengali-ner"], api=api) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: HF_HUB_OFFLINE=1 is set, so nothing can be uploaded")
    assert "unset HF_HUB_OFFLINE" in err[0] and "--dry-run" in err[0]
    assert api.calls == [] and not (run_copy / push_module.UPLOAD_DIR).exists()


def hub_config(**overrides: Any) -> Any:
    from omegaconf import OmegaConf

    values = {"push": True, "repo_id": "me/x", "private": False, "dry_run": False, "max_retries": 0}
    return OmegaConf.create({**values, **overrides})


def real_hub_error(status: int) -> Exception:
    """huggingface_hub's own HTTP error, with a stand-in of the response it wraps."""
    from types import SimpleNamespace

    from huggingface_hub.errors import HfHubHTTPError

    response = SimpleNamespace(status_code=status, headers={}, request=None)
    return HfHubHTTPError(f"{status} Client Error: Forbidden for url", response=response)


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (FakeHTTPError(403), "no write access to me/x (HTTP 403)"),
        (real_hub_error(403), "no write access to me/x (HTTP 403)"),
        (
            ConnectionError("connection reset"),
            "cannot reach the Hub to upload to me/x (ConnectionError) after 1 attempts",
        ),
    ],
    ids=["403", "hf-403", "network"],
)
def test_failed_push_after_training_raises_with_the_retry_command(
    run_copy: Path, with_token: str, failure: Exception, reason: str
) -> None:
    before = {k: v for k, v in snapshot(run_copy).items() if not k.startswith("hub_upload")}
    with pytest.raises(PushFailedError) as info:
        push_run(run_copy, hub_config(), api=FakeHfApi(failures=[failure]))
    err = info.value
    message = str(err)
    assert err.exit_code == 3 and isinstance(err, NerExperimentError) and "\n" not in message
    assert message.startswith(f"upload to me/x failed: {reason}")
    assert (
        f"The model is saved in {run_copy / 'model'}; retry with: ner-publish {run_copy} --repo-id me/x"
        in message
    )
    assert err.retry_command == f"ner-publish {run_copy} --repo-id me/x" and message.endswith(
        err.retry_command
    )
    assert TOKEN not in message
    after = {k: v for k, v in snapshot(run_copy).items() if not k.startswith("hub_upload")}
    assert after == before  # the model and the run's results are kept as they were


def test_retry_command_keeps_the_repo_private_and_quotes_the_path(
    run_copy: Path, with_token: str, tmp_path: Path
) -> None:
    spaced = tmp_path / "my runs" / run_copy.name
    spaced.parent.mkdir()
    run_copy.rename(spaced)
    with pytest.raises(PushFailedError) as info:
        push_run(spaced, hub_config(private=True), api=FakeHfApi(failures=[FakeHTTPError(403)]))
    assert info.value.retry_command == f"ner-publish '{spaced}' --repo-id me/x --private"


def test_each_retry_is_one_line_and_the_hub_client_is_quiet(
    run_copy: Path, with_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    class ChattyApi(FakeHfApi):
        """Fails like the real client, which logs every request and its own retries."""

        def create_repo(self, repo_id: str, **kwargs: Any) -> str:
            logging.getLogger("httpx2").info("HTTP Request: POST /api/repos/create 503")
            logging.getLogger("huggingface_hub.utils._http").warning("Retrying in 1s [Retry 1/5].")
            return super().create_repo(repo_id, **kwargs)

    caplog.set_level(logging.INFO)
    level_before = logging.getLogger("huggingface_hub").level
    api = ChattyApi(failures=[FakeHTTPError(503), FakeHTTPError(503)])
    publish_run(run_copy, "me/bengali-ner", max_retries=3, api=api, sleep=lambda s: None)
    assert {r.name for r in caplog.records} == {"ner_experiments.publishing.push"}  # no client lines
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert lines == [
        "upload to me/bengali-ner failed (HTTP 503); retry 1 of 3 in 1 s",
        "upload to me/bengali-ner failed (HTTP 503); retry 2 of 3 in 2 s",
    ]
    assert logging.getLogger("huggingface_hub").level == level_before  # restored afterwards


def test_passwords_in_urls_are_not_uploaded(run_copy: Path, no_token: None) -> None:
    config = run_copy / "model" / "training_config.yaml"
    url = "postgresql+psycopg://optuna:S3cretPass@db.example:5432/optuna"
    config.write_text(config.read_text(encoding="utf-8") + f"optuna_storage: {url}\n", encoding="utf-8")
    result = publish_run(run_copy, "me/bengali-ner", dry_run=True)
    staged = (result.folder / "training_config.yaml").read_text(encoding="utf-8")
    assert "S3cretPass" not in staged
    assert "postgresql+psycopg://optuna:<redacted>@db.example:5432/optuna" in staged
    assert url in config.read_text(encoding="utf-8")  # the run's own copy is left as it was


def test_a_wandb_key_in_the_card_is_redacted_and_in_the_weights_blocks_the_upload(
    run_copy: Path, with_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "wandb" + "0123456789abcdef" * 2
    monkeypatch.setenv("WANDB_API_KEY", key)
    (run_copy / "README.md").write_text(f"a card that leaked {key}\n", encoding="utf-8")
    api = FakeHfApi()
    publish_run(run_copy, "me/bengali-ner", api=api, card_text=None)
    assert api.uploaded["README.md"] == b"a card that leaked <redacted>\n"  # text files: redacted
    with open(run_copy / "model" / "model.safetensors", "ab") as weights:  # a file the rule cannot rewrite
        weights.write(key.encode())
    api = FakeHfApi()
    with pytest.raises(PublishError, match="model.safetensors contain\\(s\\) your WANDB_API_KEY") as info:
        publish_run(run_copy, "me/bengali-ner", api=api)
    assert key not in str(info.value) and api.calls == []


@pytest.mark.parametrize("kind", ["model", "dataset"])
def test_offline_advice_does_not_ask_for_what_is_already_set(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ner_experiments.offline import offline_advice

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    assert "a populated Hugging Face cache with HF_HUB_OFFLINE=1" in offline_advice(kind)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    advice = offline_advice(kind)
    assert advice.startswith(f"HF_HUB_OFFLINE=1 is set and the {kind} is not in the local Hugging Face cache")
    assert "with HF_HUB_OFFLINE=1" not in advice and "unset HF_HUB_OFFLINE" in advice
    assert "experiment=quickstart" in advice


def test_offline_advice_names_the_datasets_switch_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from ner_experiments.offline import offline_advice

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    advice = offline_advice("dataset")
    assert advice.startswith("HF_HUB_OFFLINE=1 and HF_DATASETS_OFFLINE=1 are set")
    assert "unset HF_HUB_OFFLINE and HF_DATASETS_OFFLINE" in advice


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--repo-id", "not a repo"], "not a valid Hub repo id"),
        (["--repo-id", "noslash"], "needs a namespace"),
    ],
)
def test_bad_repo_ids(run_copy: Path, no_token: None, args: list[str], message: str, capsys) -> None:
    assert publish_main([str(run_copy), *args, "--dry-run"], api=FakeHfApi()) == 2
    assert message in capsys.readouterr().err


def test_unfinished_run_and_missing_weights(run_copy: Path, no_token: None, capsys) -> None:
    (run_copy / "model" / "model.safetensors").unlink()
    assert publish_main([str(run_copy), "--repo-id", "me/x", "--dry-run"]) == 2
    assert "no .safetensors weights" in capsys.readouterr().err
    (run_copy / "metrics.json").unlink()
    assert publish_main([str(run_copy), "--repo-id", "me/x", "--dry-run"]) == 2
    assert "not a finished run" in capsys.readouterr().err
