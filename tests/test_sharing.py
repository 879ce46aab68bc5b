"""What leaves the machine: no secret in anything a run writes or sends, no machine path in what it
publishes (docs/publishing.md, "What is shared"). The sweep on a password-protected PostgreSQL study is
in tests/test_sweep_postgres.py."""

from __future__ import annotations

import json
import logging

import pytest
import yaml
from huggingface_hub import ModelCard

from ner_experiments.redaction import (
    REDACTED,
    RedactingFilter,
    redact,
    redact_text,
    replace_machine_paths,
    without_machine_paths,
)
from tests.helpers import make_conll_dir, only_run_dir, run_train

PASSWORD = "pw-PASSWORD-7f3a"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"postgresql+psycopg://optuna:{PASSWORD}@db.example.org:5432/optuna",
            f"postgresql+psycopg://optuna:{REDACTED}@db.example.org:5432/optuna",
        ),
        (f"mysql://:{PASSWORD}@host/db", f"mysql://:{REDACTED}@host/db"),
        (
            f"https://example.org/data.parquet?token={PASSWORD}&split=train",
            f"https://example.org/data.parquet?token={REDACTED}&split=train",
        ),
        (
            f"s3://b/k?X-Amz-Credential=AKIA&X-Amz-Signature={PASSWORD}",
            f"s3://b/k?X-Amz-Credential={REDACTED}&X-Amz-Signature={REDACTED}",
        ),
        ("sqlite:////home/me/outputs/optuna/quick.db", "sqlite:////home/me/outputs/optuna/quick.db"),
        ("postgresql+psycopg://optuna@db/optuna", "postgresql+psycopg://optuna@db/optuna"),
        ("unimelb-nlp/wikiann", "unimelb-nlp/wikiann"),
    ],
)
def test_one_rule_redacts_url_passwords_and_token_parameters_only(text, expected):
    assert redact_text(text) == expected


def test_nested_data_loses_secret_keys_and_url_passwords_but_keeps_ordinary_keys(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnop")
    data = {
        "dataset": {"tokens_column": "tokens", "path": "unimelb-nlp/wikiann"},
        "optuna": {"storage": f"postgresql://u:{PASSWORD}@h/db"},
        "hub": {"password": "hunter22", "api_key": None},
        "note": ["the token is hf_abcdefghijklmnop"],
    }
    assert redact(data) == {
        "dataset": {"tokens_column": "tokens", "path": "unimelb-nlp/wikiann"},
        "optuna": {"storage": f"postgresql://u:{REDACTED}@h/db"},
        "hub": {"password": REDACTED, "api_key": None},
        "note": [f"the token is {REDACTED}"],
    }


def test_log_lines_are_redacted_by_the_filter():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "storage %s", (f"pg://u:{PASSWORD}@h",), None)
    assert RedactingFilter().filter(record)
    assert PASSWORD not in record.getMessage() and REDACTED in record.getMessage()


def test_published_data_names_folders_not_machine_paths():
    config = {"dataset": {"data_dir": "/home/me/corpora/my-ner/", "path": "unimelb-nlp/wikiann"}, "seed": 1}
    assert without_machine_paths(config) == {
        "dataset": {"data_dir": "my-ner", "path": "unimelb-nlp/wikiann"},
        "seed": 1,
    }
    text = "trained on /home/me/corpora/my-ner with /home/me/models/bert-local"
    paths = ["/home/me/corpora/my-ner", "/home/me/models/bert-local"]
    assert replace_machine_paths(text, paths) == "trained on my-ner with bert-local"


def test_hub_upload_of_local_data_and_local_model_names_no_absolute_path(tmp_path, tiny_local_model):
    data_dir = make_conll_dir(tmp_path / "my-ner-data")
    out = tmp_path / "outputs"
    result = run_train(
        "experiment=quickstart", "dataset=conll_files", f"dataset.data_dir={data_dir.resolve()}",
        "model=local", f"model.name_or_path={tiny_local_model}", "model.base_model=google-bert/bert-base-cased",
        "model.max_length=64", "trainer.num_train_epochs=1", "hub=push", "hub.repo_id=me/my-ner",
        "hub.dry_run=true", f"paths.output_dir={out}", f"paths.cache_dir={tmp_path / 'cache'}",
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    upload = only_run_dir(out) / "hub_upload"
    files = sorted(p for p in upload.iterdir() if p.is_file())
    assert {p.name for p in files} >= {
        "README.md",
        "training_config.yaml",
        "model.safetensors",
        "config.json",
    }
    machine_paths = [str(data_dir.resolve()), str(tiny_local_model), str(tmp_path)]
    for path in files:
        content = path.read_bytes()
        leaked = [p for p in machine_paths if p.encode() in content]
        assert not leaked, f"{path.name} names {leaked}"
    config = yaml.safe_load((upload / "training_config.yaml").read_text())
    assert config["dataset"]["data_dir"] == "my-ner-data"
    assert config["model"]["name_or_path"] == tiny_local_model.name
    card = ModelCard.load(upload / "README.md")
    assert card.data.base_model == "google-bert/bert-base-cased"
    assert card.data.eval_results[0].dataset_name == "my-ner-data"
    assert "google-bert/bert-base-cased" in card.text


def test_base_model_must_be_a_hub_id(tmp_path):
    result = run_train(
        "experiment=quickstart", "model.base_model=/home/me/bert", f"paths.output_dir={tmp_path}"
    )
    assert result.returncode == 2
    assert "model.base_model=/home/me/bert is not a Hub id" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_url_password_given_on_the_command_line_reaches_no_file_of_the_run(tmp_path):
    # Any config value is covered by the rule: here the run name (it titles the model card too).
    out = tmp_path / "out"
    secret_url = f"postgresql://optuna:{PASSWORD}@db.example.org/optuna"
    result = run_train(
        "experiment=quickstart", "trainer.num_train_epochs=1", "dataset.max_train_samples=32",
        "dataset.max_eval_samples=16", f"logger.run_name='{secret_url}'",
        f"paths.output_dir={out}", f"paths.cache_dir={tmp_path / 'cache'}", timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    leaked = [p for p in out.rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()]
    assert leaked == []
    assert PASSWORD not in result.stdout + result.stderr
    run_dir = only_run_dir(out)
    for name in ("config.yaml", ".hydra/config.yaml", ".hydra/overrides.yaml", "model/training_config.yaml"):
        assert REDACTED in (run_dir / name).read_text(), name
    assert "postgresql://optuna:<redacted>@db.example.org" in (run_dir / "train.log").read_text()
    assert json.loads((run_dir / "metrics.json").read_text())["objective"]["name"] == "validation.overall_f1"


def test_resume_true_finds_a_run_whose_saved_overrides_were_redacted(tmp_path):
    from ner_experiments.run_dirs import find_run_to_resume

    override = f"logger.run_name=pg://u:{PASSWORD}@h/db"
    run_dir = tmp_path / "2026-01-01" / "00-00-00_tiny-sample_bn"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([redact_text(override)]))
    (run_dir / "checkpoints" / "checkpoint-4").mkdir(parents=True)
    (run_dir / "checkpoints" / "checkpoint-4" / "trainer_state.json").write_text("{}")
    assert find_run_to_resume("true", tmp_path, [override, "resume=true"]) == run_dir
