"""Test-wide settings (no network, no W&B uploads) and what the whole session shares: the shipped tiny
tokenizer, a tiny model folder, and ONE tiny training run reused by every file that needs a trained model.

Fixtures here are session-scoped (built once, on first use); a test that changes files works on
``run_copy``, never on ``tiny_run`` itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # test files import `tests.helpers`

from tests.helpers import TINY_RUN_OVERRIDES, only_run_dir, run_train  # noqa: E402

# Nothing in the test suite may reach the Hub or W&B servers.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass(frozen=True)
class TrainedRun:
    """A finished ``train.py`` run: its directory, where it wrote, and what it printed."""

    run_dir: Path
    output_dir: Path
    cache_dir: Path
    overrides: tuple[str, ...]
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """The tiny model's WordPiece tokenizer, shipped with the sample data (cased, 3000 pieces)."""
    from ner_experiments.model import TINY_TOKENIZER_DIR, load_tokenizer

    return load_tokenizer(str(TINY_TOKENIZER_DIR))


@pytest.fixture(scope="session")
def tiny_local_model(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer) -> Path:
    """A saved small random BERT with the tiny tokenizer and B-X/I-X labels, standing in for a Hub model."""
    from transformers import BertConfig, BertForTokenClassification

    folder = tmp_path_factory.mktemp("tiny-bert")
    labels = ["O", "B-X", "I-X"]
    config = BertConfig(
        vocab_size=len(tiny_tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
    BertForTokenClassification(config).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_training(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """``train.py`` with :data:`~tests.helpers.TINY_RUN_OVERRIDES` on a fresh feature cache, once per
    session (about 20 s on 2 CPU cores). Do not modify its files: use ``run_copy``."""
    root = tmp_path_factory.mktemp("tiny_run")
    output_dir, cache_dir = root / "outputs", root / "cache"
    overrides = (*TINY_RUN_OVERRIDES, f"paths.output_dir={output_dir}", f"paths.cache_dir={cache_dir}")
    result = run_train(*overrides, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return TrainedRun(only_run_dir(output_dir), output_dir, cache_dir, overrides, result)


@pytest.fixture(scope="session")
def tiny_run(tiny_training: TrainedRun) -> Path:
    """The run directory of the shared tiny training run (read only)."""
    return tiny_training.run_dir


@pytest.fixture
def run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny run (without checkpoints and the staged upload), for tests that change files."""
    dest = tmp_path / tiny_run.name
    shutil.copytree(tiny_run, dest, ignore=shutil.ignore_patterns("checkpoints", "hub_upload"))
    return dest
