"""One W&B mode rule (tracking.resolve_wandb_mode) for trial runs and a sweep's summary run alike."""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path
from typing import Any

import optuna
import pytest

from ner_experiments.config import LoggerConfig
from ner_experiments.sweeping.results import log_sweep_summary, write_results
from ner_experiments.tracking import Tracker, resolve_wandb_mode

API_KEY = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def no_credentials(tmp_path, monkeypatch) -> Path:
    """A home without ~/.netrc and no W&B variables; returns the home folder."""
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def wandb_login(home: Path, host: str = "api.wandb.ai") -> None:
    """What ``wandb login`` leaves behind: a netrc entry for the W&B host, readable by its owner only."""
    netrc = home / ".netrc"
    netrc.write_text(f"machine {host}\n  login user\n  password {API_KEY}\n")
    netrc.chmod(0o600)


def test_auto_is_offline_without_credentials_and_online_with_either_kind(no_credentials, monkeypatch):
    assert resolve_wandb_mode("auto") == "offline"
    assert resolve_wandb_mode(None) == "offline"
    wandb_login(no_credentials)
    assert resolve_wandb_mode("auto") == "online"  # `wandb login` alone is enough
    (no_credentials / ".netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", API_KEY)
    assert resolve_wandb_mode("auto") == "online"


def test_netrc_of_another_host_or_readable_by_others_is_read_as_wandb_reads_it(no_credentials, monkeypatch):
    wandb_login(no_credentials, host="wandb.example.org")
    assert resolve_wandb_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")
    assert resolve_wandb_mode("auto") == "online"
    (no_credentials / ".netrc").chmod(
        0o644
    )  # Python's netrc refuses its default file like this; wandb reads it
    assert resolve_wandb_mode("auto") == "online"
    other = no_credentials / "elsewhere.netrc"
    other.write_text("machine api.wandb.ai login user password x\n")
    monkeypatch.delenv("WANDB_BASE_URL")
    monkeypatch.setenv("NETRC", str(other))
    assert resolve_wandb_mode("auto") == "online"


def test_wandb_mode_variable_wins_then_logger_mode(no_credentials, monkeypatch):
    wandb_login(no_credentials)
    assert resolve_wandb_mode("offline") == "offline"
    assert resolve_wandb_mode("disabled") == "disabled"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_wandb_mode("online") == "offline"
    assert resolve_wandb_mode("auto") == "offline"


class FakeWandb(types.ModuleType):
    """Records what wandb.init was given; runs keep their summary in a dict."""

    def __init__(self) -> None:
        super().__init__("wandb")
        self.inits: list[dict[str, Any]] = []
        self.run: Any = None

    def init(self, **kwargs: Any) -> Any:
        self.inits.append(kwargs)
        run = types.SimpleNamespace(
            summary={}, dir=str(kwargs.get("dir")), log=lambda data: None, finish=lambda **kw: None
        )
        run.settings = types.SimpleNamespace(_offline=kwargs.get("mode") == "offline")
        run.define_metric = lambda name, **options: None
        run.get_url = lambda: "https://wandb.ai/run"
        return run

    def Table(self, **kwargs: Any) -> Any:  # noqa: N802  (wandb's name)
        return kwargs


def test_trial_runs_and_the_summary_run_follow_the_same_rule_and_never_hold_the_key(
    no_credentials, tmp_path, monkeypatch, caplog
):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    wandb_login(no_credentials)
    caplog.set_level(logging.DEBUG)

    config = {"logger": {"backend": "wandb"}, "hub": {"token": API_KEY}, "wandb_api_key": API_KEY}
    tracker = Tracker(LoggerConfig(backend="wandb"), tmp_path, "run", config, True, ["sweep"])
    tracker.start()
    assert tracker.report_to == ["wandb"] and tracker.url == "https://wandb.ai/run"
    tracker.summary({"test_f1": 0.5})
    tracker.finish(failed=False)

    study = optuna.create_study(study_name="s", direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    summary = write_results(study, tmp_path / "sweep", plots=False)
    log_sweep_summary(study, {"mode": "auto", "project": "p", "entity": None}, tmp_path / "sweep", summary)

    assert [init["mode"] for init in fake.inits] == ["online", "online"]  # the netrc login counts for both
    assert API_KEY not in repr(fake.inits) and API_KEY not in caplog.text
