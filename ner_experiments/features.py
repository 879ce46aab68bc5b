"""Turning the data contract into model features for every split."""

from __future__ import annotations

import logging
from typing import Any

from datasets import Dataset

from ner_experiments.alignment import FeatureBuilder
from ner_experiments.data.contract import NerData
from ner_experiments.labels import b_to_i_label_ids

log = logging.getLogger(__name__)


def build_features(
    data: NerData,
    tokenizer: Any,
    max_length: int,
    stride: int,
    label_all_subwords: bool,
    num_proc: int | None = None,
) -> dict[str, Dataset]:
    """Tokenized, aligned and windowed features per split.

    Only training features follow ``label_all_subwords``; evaluation features always label first pieces,
    because evaluation reads one prediction per word from there.
    """
    continuation = b_to_i_label_ids(data.label_names)
    features: dict[str, Dataset] = {}
    for split, ds in data.splits.items():
        builder = FeatureBuilder(
            tokenizer, max_length, stride, label_all_subwords and split == "train", continuation
        )
        features[split] = ds.map(
            builder,
            batched=True,
            batch_size=1000,
            with_indices=True,
            remove_columns=ds.column_names,
            num_proc=num_proc,
            desc=f"tokenize {split}",
        )
        n_split = count_split_sentences(features[split])
        if n_split:
            log.info(
                "%s: %d of %d sentences are longer than %d pieces and were split into overlapping windows",
                split,
                n_split,
                len(ds),
                max_length,
            )
    return features


def count_split_sentences(features: Dataset) -> int:
    """How many sentences were split into more than one window."""
    ids = [sid for sid, split in zip(features["sentence_id"], features["was_split"], strict=True) if split]
    return len(set(ids))
