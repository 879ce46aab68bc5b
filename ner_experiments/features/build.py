"""Features of every split of a data set, cached on disk and reused across runs and sweep trials.

Tokenizing and aligning is the same work for every trial of a sweep that keeps the tokenizer and the
alignment options, so each split's features are written once to an Arrow file named by a fingerprint
of everything they depend on: the tokenizer's full definition, the :class:`FeatureSettings`, the label
names, the feature-building code and the split's content. Files live under
``<paths.cache_dir>/ner_features/`` (or the Hugging Face datasets cache when ``paths.cache_dir`` is
null); delete that folder to clear the cache. Nothing is cached after ``datasets.disable_caching()``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
from datasets import Dataset

from ner_experiments.data.contract import NerData
from ner_experiments.features import builder, windows
from ner_experiments.features.builder import FeatureBuilder, FeatureSettings, count_windowed_sentences
from ner_experiments.labels import b_to_i_label_ids

log = logging.getLogger(__name__)

CACHE_SUBDIR = "ner_features"


@dataclass
class FeatureBuildReport:
    """What building the features cost, and whether the cache had them."""

    seconds: float = 0.0
    sentences: int = 0
    splits: dict[str, str] = field(default_factory=dict)  # split -> "hit" | "miss" | "uncached"
    windowed: dict[str, int] = field(default_factory=dict)  # split -> sentences split into windows
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


def feature_cache_dir(cache_dir: str | Path | None) -> Path:
    """``<cache_dir>/ner_features``, or the same under the Hugging Face datasets cache."""
    root = Path(cache_dir) if cache_dir else Path(datasets.config.HF_DATASETS_CACHE)
    return root.expanduser() / CACHE_SUBDIR


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Hash of what decides the pieces: the fast tokenizer's full definition and its class.

    The definition is serialised from a copy without truncation and padding, which the tokenizer's
    callers set per call; the Rust library makes the copy, which is much faster than a JSON round trip.
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
    for module in (builder, windows):
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()


def features_fingerprint(
    ds: Dataset, tokenizer_hash: str, settings: FeatureSettings, labels: list[str]
) -> str:
    """The cache key of one split's features."""
    options = {**asdict(settings), "label_names": list(labels), "datasets": datasets.__version__}
    h = hashlib.sha256()
    for part in (
        tokenizer_hash,
        json.dumps(options, sort_keys=True),
        _code_fingerprint(),
        data_fingerprint(ds),
    ):
        h.update(part.encode())
    return h.hexdigest()[:32]


def read_columns(ds: Dataset, names: list[str]) -> dict[str, list]:
    """Whole columns as Python lists, in one Arrow conversion (``ds[name]`` iterates row by row)."""
    table = ds.select_columns(names).with_format("arrow")[:]
    return {name: table.column(name).to_pylist() for name in names}


def count_split_sentences(features: Dataset) -> int:
    """How many sentences of a split's features were split into more than one window."""
    cols = read_columns(features, ["sentence_id", "was_split"])
    return count_windowed_sentences(cols["sentence_id"], cols["was_split"])


def build_features(
    data: NerData,
    tokenizer: Any,
    settings: dict[str, FeatureSettings],
    cache_dir: str | Path | None = None,
) -> tuple[dict[str, Dataset], FeatureBuildReport]:
    """Features of every split of ``data`` with that split's ``settings`` (see
    :meth:`FeatureSettings.per_split`), read from the cache when it has them. Returns the features per
    split and a :class:`FeatureBuildReport` (time, cache hit or miss per split)."""
    start = time.perf_counter()
    folder = feature_cache_dir(cache_dir) if datasets.is_caching_enabled() else None
    tok_hash = tokenizer_fingerprint(tokenizer) if folder is not None else ""
    report = FeatureBuildReport(cache_dir=str(folder) if folder else None)
    out: dict[str, Dataset] = {}
    for split, ds in data.splits.items():
        split_settings = settings[split]
        path = None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            key = features_fingerprint(ds, tok_hash, split_settings, data.label_names)
            path = folder / f"{split}-{key}.arrow"
        report.splits[split] = "uncached" if path is None else "hit" if path.is_file() else "miss"
        if report.splits[split] == "hit":
            out[split] = Dataset.from_file(str(path))
        else:
            feature_builder = FeatureBuilder(tokenizer, split_settings, b_to_i_label_ids(data.label_names))
            out[split] = _map(ds, feature_builder, split, path)
        report.sentences += len(ds)
        windowed = report.windowed[split] = count_split_sentences(out[split])
        if windowed:
            n, width = len(ds), split_settings.max_length
            log.info(
                "%s: %d of %d sentences are over %d pieces: split into windows", split, windowed, n, width
            )
    report.seconds = time.perf_counter() - start
    cache = ", ".join(f"{k} {v}" for k, v in report.splits.items())
    log.info("Features for %d sentences in %.2f s (cache: %s)", report.sentences, report.seconds, cache)
    return out, report


def _map(ds: Dataset, feature_builder: FeatureBuilder, split: str, path: Path | None) -> Dataset:
    cache: dict[str, Any] = {}
    if path is not None:
        cache = {"cache_file_name": str(path), "new_fingerprint": path.stem, "load_from_cache_file": True}
    return ds.map(
        feature_builder,
        batched=True,
        batch_size=1000,
        with_indices=True,
        remove_columns=ds.column_names,
        desc=f"tokenize {split}",
        **cache,
    )
