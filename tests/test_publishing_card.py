"""The model card: metadata and body generated from a tiny run, and parsing back with huggingface_hub."""

from __future__ import annotations

import json
import re
from pathlib import Path

from huggingface_hub import ModelCard
from omegaconf import OmegaConf

from ner_experiments.publishing.card import build_model_card, write_model_card
from tests.helpers import TINY_REPO_ID as REPO_ID
from tests.helpers import sample_sentences

BENGALI = re.compile(r"[\u0980-\u09FF]")


def _load(run_dir: Path) -> tuple[dict, dict]:
    return OmegaConf.load(run_dir / "config.yaml"), json.loads((run_dir / "metrics.json").read_text())


def test_training_writes_card_with_metadata_from_the_run(tiny_run: Path) -> None:
    card = ModelCard.load(tiny_run / "README.md")
    data = card.data.to_dict()
    assert data["language"] == "bn"
    assert data["license"] == "apache-2.0"
    assert data["pipeline_tag"] == "token-classification"
    assert {"token-classification", "ner", "bn"} <= set(data["tags"])
    assert "base_model" not in data  # model=tiny is a random-init test model
    assert "datasets" not in data  # the shipped sample has no Hub id
    assert set(data["metrics"]) == {"precision", "recall", "f1", "accuracy"}

    test_sentences = {" ".join(words) for words, _ in sample_sentences("bn", "test")}
    widgets = [w["text"] for w in data["widget"]]
    assert 1 <= len(widgets) <= 3
    assert all(w in test_sentences and BENGALI.search(w) for w in widgets)
    # Read from the run's results, where training recorded them: the card needs no data.
    assert widgets == json.loads((tiny_run / "metrics.json").read_text())["run"]["widget_examples"]

    metrics = json.loads((tiny_run / "metrics.json").read_text())["test"]
    results = card.data.eval_results
    assert card.data.model_name == REPO_ID
    assert all(r.task_type == "token-classification" and r.dataset_split == "test" for r in results)
    overall = {r.metric_type: r.metric_value for r in results if r.metric_config is None}
    assert overall["f1"] == round(metrics["overall_f1"], 4)
    assert overall["accuracy"] == round(metrics["overall_accuracy"], 4)
    per_type = {(r.metric_config, r.metric_type): r.metric_value for r in results if r.metric_config}
    for kind, row in metrics["per_type"].items():
        assert per_type[(kind, "f1")] == round(row["f1"], 4)
        assert per_type[(kind, "precision")] == round(row["precision"], 4)


def test_card_body_has_training_results_usage_and_limitations(tiny_run: Path) -> None:
    text = (tiny_run / "README.md").read_text(encoding="utf-8")
    cfg, results = _load(tiny_run)
    assert "Bengali" in text and "randomly initialised" in text and "Test model" in text
    for split in ("Test split", "Validation split"):
        assert split in text
    for kind in results["test"]["per_type"]:
        assert f"| {kind} |" in text
    assert f'pipeline("token-classification", model="{REPO_ID}"' in text
    assert f"| learning rate | {cfg.trainer.learning_rate} |" in text
    assert results["run"]["hardware"] in text
    assert "## Limitations" in text
    assert "Weights & Biases" not in text  # no W&B run in this run


def test_card_round_trips_through_huggingface_hub(tiny_run: Path, tmp_path: Path) -> None:
    cfg, results = _load(tiny_run)
    card = build_model_card(cfg, results, repo_id="me/x", widgets=["সিডনি ক্রিকেট গ্রাউন্ড"])
    parsed = ModelCard(str(card))
    assert parsed.data.to_dict() == card.data.to_dict()
    assert parsed.text == card.text
    path = write_model_card(tmp_path, cfg, results, repo_id="me/x")
    again = ModelCard.load(path)
    assert again.data.to_dict()["model-index"] == card.data.to_dict()["model-index"]


def test_card_of_a_pretrained_model_names_base_model_dataset_and_wandb_run(tiny_run: Path) -> None:
    cfg, results = _load(tiny_run)
    cfg.model.source, cfg.model.name_or_path, cfg.model.name = (
        "hub",
        "google-bert/bert-base-multilingual-cased",
        "mbert_cased",
    )
    cfg.dataset.hub_dataset_id, cfg.dataset.name, cfg.dataset.config_name = (
        "unimelb-nlp/wikiann",
        "wikiann_bn",
        "bn",
    )
    results = {
        **results,
        "run": {**results["run"], "random_init_model": False, "wandb_url": "https://wandb.ai/me/p/runs/abc"},
    }
    card = build_model_card(cfg, results, repo_id="me/bengali-ner", widgets=[])
    data = card.data.to_dict()
    assert data["base_model"] == "google-bert/bert-base-multilingual-cased"
    assert data["datasets"] == ["unimelb-nlp/wikiann"]
    assert "random-init-test-model" not in data["tags"]
    assert "widget" not in data
    assert card.data.eval_results[0].dataset_type == "unimelb-nlp/wikiann"
    assert card.data.eval_results[0].dataset_config == "bn"
    assert "https://wandb.ai/me/p/runs/abc" in card.text
    assert "Test model" not in card.text and "silver standard" in card.text


def test_card_widgets_come_from_the_results_without_reading_data(tiny_run: Path) -> None:
    cfg, results = _load(tiny_run)
    cfg.dataset.source, cfg.dataset.data_dir = "files", "/nonexistent/data"  # nothing there to read
    run = {**results["run"], "widget_examples": ["Mary lives in Paris"]}
    card = build_model_card(cfg, {**results, "run": run}, repo_id="me/x")
    assert card.data.to_dict()["widget"] == [{"text": "Mary lives in Paris"}]
    run = {k: v for k, v in results["run"].items() if k != "widget_examples"}
    assert "widget" not in build_model_card(cfg, {**results, "run": run}, repo_id="me/x").data.to_dict()
