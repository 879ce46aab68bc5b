"""Tokenized features cached on disk, reused across runs and sweep trials.

Tokenizing and aligning is the same work for every trial of a sweep that keeps the tokenizer and the
alignment options, so each split's features are written once to an Arrow file named by a fingerprint
of everything they depend on:

- the tokenizer (its full ``tokenizer.json``: vocabulary, normalizer, pre-tokenizer, special tokens),
- the alignment options (``max_length``, window ``stride``, ``label_all_subwords``, the label names),
- the code that builds features (``alignment.py`` and ``features.py``: a change there invalidates),
- the split's content (the Arrow bytes of its ``tokens`` and ``tags``).

Files live under ``<paths.cache_dir>/ner_features/`` (or the Hugging Face datasets cache when
``paths.cache_dir`` is null). Delete that folder to clear the cache; it is not needed for anything else.
Caching is skipped when ``datasets.disable_caching()`` was called.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
from datasets import Dataset

from ner_experiments import alignment, features
from ner_experiments.data.contract import NerData
from ner_experiments.features import build_split_features, log_split_sentences
from ner_experiments.labels import b_to_i_label_ids

log = logging.getLogger(__name__)

CACHE_SUBDIR = "ner_features"


@dataclass
class FeatureBuildReport:
    """What building the features cost, and whether the cache had them."""

    seconds: float = 0.0
    sentences: int = 0
    splits: dict[str, str] = field(default_factory=dict)  # split -> "hit" | "miss" | "uncached"
    cache_dir: str | None = None

    @property
    def all_hits(self) -> bool:
        return bool(self.splits) and all(v == "hit" for v in self.splits.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 3),
            "sentences": self.sentences,
            "sentences_per_second": round(self.sentences / self.seconds, 1) if self.seconds > 0 else None,
            "cache": self.splits,
            "cache_dir": self.cache_dir,
        }


def cache_subdir(cache_dir: str | Path | None, name: str) -> Path:
    """``<cache_dir>/<name>``, or the same under the Hugging Face datasets cache when cache_dir is null."""
    root = Path(cache_dir) if cache_dir else Path(datasets.config.HF_DATASETS_CACHE)
    return root.expanduser() / name


def feature_cache_dir(cache_dir: str | Path | None) -> Path:
    """``<cache_dir>/ner_features``, or the same under the Hugging Face datasets cache."""
    return cache_subdir(cache_dir, CACHE_SUBDIR)


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Hash of what decides the pieces: the fast tokenizer's full definition and its class.

    The definition is serialised from a copy without truncation and padding, which the tokenizer's
    callers set per call; the copy is made by the Rust library (a few ms, where a JSON round trip
    in Python cost ~50 ms for a 30k vocabulary, most of a cache hit).
    """
    from tokenizers import Tokenizer

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError("feature caching needs a fast tokenizer (with backend_tokenizer)")
    definition = Tokenizer.from_str(backend.to_str())
    definition.no_truncation()
    definition.no_padding()
    h = hashlib.sha256()
    h.update(type(tokenizer).__name__.encode())
    h.update(definition.to_str().encode())
    h.update(str(tokenizer.num_special_tokens_to_add(pair=False)).encode())
    h.update(str(tokenizer.unk_token).encode())
    return h.hexdigest()


def data_fingerprint(ds: Dataset) -> str:
    """Hash of a split's content (its ``tokens`` and ``tags``), independent of where it was read from."""
    table = ds.select_columns(["tokens", "tags"]).with_format("arrow")[:]
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue()).hexdigest()


def _code_fingerprint() -> str:
    h = hashlib.sha256()
    for module in (alignment, features):
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()


def features_fingerprint(
    ds: Dataset,
    tokenizer_hash: str,
    max_length: int,
    stride: int,
    label_all_subwords: bool,
    label_names: list[str],
) -> str:
    """The cache key of one split's features."""
    options = {
        "max_length": int(max_length),
        "stride": int(stride),
        "label_all_subwords": bool(label_all_subwords),
        "label_names": list(label_names),
        "datasets": datasets.__version__,
    }
    h = hashlib.sha256()
    for part in (
        tokenizer_hash,
        json.dumps(options, sort_keys=True),
        _code_fingerprint(),
        data_fingerprint(ds),
    ):
        h.update(part.encode())
    return h.hexdigest()[:32]


def build_features_cached(
    data: NerData,
    tokenizer: Any,
    max_length: int,
    stride: int,
    label_all_subwords: bool,
    cache_dir: str | Path | None = None,
    enabled: bool = True,
    train_window: tuple[int, int] | None = None,
) -> tuple[dict[str, Dataset], FeatureBuildReport]:
    """:func:`ner_experiments.features.build_features`, read from the cache when it has the same features.

    ``train_window`` = (max_length, stride) of the training split when it differs from the other splits'
    (see :func:`ner_experiments.features.training_window`). Returns the features per split and a
    :class:`FeatureBuildReport` (time, cache hit or miss per split).
    """
    start = time.perf_counter()
    use_cache = enabled and datasets.is_caching_enabled()
    folder = feature_cache_dir(cache_dir) if use_cache else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    continuation = b_to_i_label_ids(data.label_names)
    tok_hash = tokenizer_fingerprint(tokenizer) if use_cache else ""
    report = FeatureBuildReport(cache_dir=str(folder) if folder else None)
    out: dict[str, Dataset] = {}
    for split, ds in data.splits.items():
        all_subwords = label_all_subwords and split == "train"
        length, step = train_window if train_window and split == "train" else (max_length, stride)
        if folder is None:
            out[split] = build_split_features(ds, tokenizer, length, step, all_subwords, continuation, split)
            report.splits[split] = "uncached"
        else:
            key = features_fingerprint(ds, tok_hash, length, step, all_subwords, data.label_names)
            path = folder / f"{split}-{key}.arrow"
            hit = path.is_file()
            if hit:
                out[split] = Dataset.from_file(str(path))
            else:
                out[split] = build_split_features(
                    ds,
                    tokenizer,
                    length,
                    step,
                    all_subwords,
                    continuation,
                    split,
                    cache_file_name=str(path),
                    fingerprint=key,
                )
            report.splits[split] = "hit" if hit else "miss"
        report.sentences += len(ds)
        log_split_sentences(split, out[split], len(ds), length)
    report.seconds = time.perf_counter() - start
    log.info(
        "Features for %d sentences in %.2f s (cache: %s)",
        report.sentences,
        report.seconds,
        ", ".join(f"{k} {v}" for k, v in report.splits.items()),
    )
    return out, report
