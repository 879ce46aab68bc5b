"""Pushing a run: staged folder, a stand-in HfApi that records calls, token handling, retries, dry run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ner_experiments.publishing import push as push_module
from ner_experiments.publishing.cli import publish_main
from ner_experiments.publishing.push import PublishError, publish_run, push_run
from tests import conftest_publishing as shared

tiny_run = shared.tiny_run
run_copy = shared.run_copy
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
    before = shared.snapshot(run_copy)
    api = FakeHfApi()
    code = publish_main([str(run_copy), "--repo-id", "me/bengali-ner"], api=api)
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "hf auth login" in err[0]
    assert api.calls == []
    assert shared.snapshot(run_copy) == before


def test_network_failure_is_retried_then_reported(run_copy: Path, with_token: str) -> None:
    before = {k: v for k, v in shared.snapshot(run_copy).items() if not k.startswith("hub_upload")}
    api = FakeHfApi(failures=[ConnectionError("connection reset")] * 10)
    waits: list[float] = []
    with pytest.raises(PublishError, match="after 3 attempts") as info:
        publish_run(run_copy, "me/bengali-ner", max_retries=2, api=api, sleep=waits.append)
    assert TOKEN not in str(info.value)
    assert [c[0] for c in api.calls] == ["create_repo"] * 3 and waits == [1.0, 2.0]
    after = {k: v for k, v in shared.snapshot(run_copy).items() if not k.startswith("hub_upload")}
    assert after == before


def test_transient_failure_then_success(run_copy: Path, with_token: str) -> None:
    api = FakeHfApi(failures=[FakeHTTPError(503)])
    result = publish_run(run_copy, "me/bengali-ner", api=api, sleep=lambda s: None)
    assert result.uploaded and result.url.endswith("/commit/abc")


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


def test_dry_run_and_offline_list_the_folder_and_upload_nothing(
    run_copy: Path, no_token: None, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    api = FakeHfApi()
    assert publish_main([str(run_copy), "--repo-id", "me/bengali-ner", "--dry-run"], api=api) == 0
    out = capsys.readouterr().out
    assert (
        "dry run: nothing uploaded" in out and "model.safetensors" in out and "training_args.bin" not in out
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert publish_main([str(run_copy), "--repo-id", "me/bengali-ner"], api=api) == 0
    assert "HF_HUB_OFFLINE is set" in capsys.readouterr().out
    assert api.calls == []


def test_training_hook_reports_a_failed_push_without_raising(run_copy: Path, with_token: str, capsys) -> None:
    from omegaconf import OmegaConf

    hub = OmegaConf.create(
        {"push": True, "repo_id": "me/x", "private": False, "dry_run": False, "max_retries": 0}
    )
    result = push_run(run_copy, hub, api=FakeHfApi(failures=[FakeHTTPError(403)]))
    assert not result.uploaded
    err = capsys.readouterr().err
    assert "no write access to me/x" in err and f"ner-publish {run_copy} --repo-id me/x" in err


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
