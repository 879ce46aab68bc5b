"""Test-wide settings: no network, no W&B uploads, and the repo importable as `tests`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Nothing in the test suite may reach the Hub or W&B servers.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_local_model(tmp_path_factory) -> Path:
    """A saved tiny BERT with its own WordPiece tokenizer, standing in for a Hub model folder."""
    from ner_experiments.config import ModelConfig
    from ner_experiments.modeling import build_tiny_model, build_tiny_tokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    words = []
    for lang in ("bn", "en"):
        for line in (
            (ROOT / "ner_experiments" / "sample_data" / lang / "train.jsonl").read_text().splitlines()
        ):
            words += json.loads(line)["tokens"]
    tokenizer = build_tiny_tokenizer(words, 2000, False, folder)
    model = build_tiny_model(ModelConfig(name="t", source="tiny"), tokenizer, ["O", "B-X", "I-X"])
    model.save_pretrained(folder)
    return folder
