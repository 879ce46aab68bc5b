"""Turning the data contract into model features for every split."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
from datasets import Dataset

from ner_experiments.alignment import IGNORE, FeatureBuilder
from ner_experiments.data.contract import NerData
from ner_experiments.labels import b_to_i_label_ids

log = logging.getLogger(__name__)


@dataclass
class _Pieces:
    """Where each row's pieces start in the flattened batch, and which piece starts a word."""

    word_ids: list[list[int | None]]
    offsets: np.ndarray
    row_len: np.ndarray
    valid: np.ndarray
    wid: np.ndarray
    first: np.ndarray
    row_of_piece: np.ndarray
    words_present: np.ndarray


def _first_pieces(encoding: Any, n: int) -> _Pieces:
    word_ids = [encoding.word_ids(i) for i in range(n)]
    row_len = np.fromiter((len(w) for w in word_ids), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(row_len, out=offsets[1:])
    # None (special tokens) becomes NaN, so the whole batch is one float array.
    flat = np.array(list(chain.from_iterable(word_ids)), dtype=np.float64)
    valid = ~np.isnan(flat)
    wid = np.where(valid, flat, -1).astype(np.int64)
    previous = np.empty_like(wid)
    previous[1:] = wid[:-1]
    previous[offsets[:-1][row_len > 0]] = -2  # a row's first piece never continues the row before
    first = valid & (wid != previous)
    row_of_piece = np.repeat(np.arange(n), row_len)
    words_present = np.bincount(row_of_piece[first], minlength=n)
    return _Pieces(word_ids, offsets, row_len, valid, wid, first, row_of_piece, words_present)


class _PatchedEncoding:
    """A batch encoding with some rows replaced by the rows of a second encoding (same columns)."""

    def __init__(self, base: Any, rows: list[int], patch: Any) -> None:
        self._base, self._patch = base, patch
        self._row_in_patch = {row: j for j, row in enumerate(rows)}
        self._columns: dict[str, list] = {}  # read once per long sentence when windows are cut

    def __contains__(self, key: str) -> bool:
        return key in self._base

    def __getitem__(self, key: str) -> list:
        if key not in self._columns:
            column = list(self._base[key])
            replacement = self._patch[key]
            for row, j in self._row_in_patch.items():
                column[row] = replacement[j]
            self._columns[key] = column
        return self._columns[key]

    def word_ids(self, row: int) -> list[int | None]:
        j = self._row_in_patch.get(row)
        return self._base.word_ids(row) if j is None else self._patch.word_ids(j)


class BatchFeatureBuilder(FeatureBuilder):
    """:class:`FeatureBuilder` that aligns a whole batch at once with numpy (same output, row for row).

    Sentences that fit ``max_length`` are aligned in one vectorised pass over the batch's ``word_ids``;
    long sentences (windows) and batches with words the tokenizer drops fall back to the per-sentence
    code, which is rare. On short-sentence data sets the Python per-piece loop was as costly as the
    Rust tokenizer itself.
    """

    def __call__(self, batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        sentences = [list(tokens) for tokens in batch["tokens"]]
        tags_batch = batch["tags"]
        n = len(sentences)
        if n == 0:
            return super().__call__(batch, indices)
        encoding = self._tokenize(sentences)
        n_words = np.fromiter((len(s) for s in sentences), dtype=np.int64, count=n)
        pieces = _first_pieces(encoding, n)
        incomplete = np.nonzero(pieces.words_present != n_words)[0].tolist()
        if incomplete:
            # Words the tokenizer turns into nothing (zero-width joiners in Bengali news, say) become the
            # unknown token; only those sentences are tokenized again (as the per-sentence path does).
            fixed = self._replace_empty_words(sentences, encoding, incomplete)
            patch = self._tokenize([fixed[i] for i in incomplete])
            sentences = fixed
            encoding = _PatchedEncoding(encoding, incomplete, patch)
            pieces = _first_pieces(encoding, n)
            if np.any(pieces.words_present != n_words):
                return super().__call__(batch, indices)
        word_ids, offsets, row_len = pieces.word_ids, pieces.offsets, pieces.row_len
        valid, wid, first, row_of_piece = pieces.valid, pieces.wid, pieces.first, pieces.row_of_piece

        word_offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(n_words, out=word_offsets[1:])
        tags_flat = np.fromiter(chain.from_iterable(tags_batch), dtype=np.int64, count=int(word_offsets[-1]))
        if tags_flat.size:
            piece_tag = tags_flat[np.where(valid, word_offsets[row_of_piece] + wid, 0)]
        else:
            piece_tag = np.zeros(len(wid), dtype=np.int64)
        labels = np.full(len(wid), IGNORE, dtype=np.int64)
        labels[first] = piece_tag[first]
        if self.label_all_subwords:
            continuation = valid & ~first
            labels[continuation] = np.asarray(self.continuation_ids, dtype=np.int64)[piece_tag[continuation]]
        word_index = np.where(first, wid, -1)

        has_types = "token_type_ids" in encoding
        out = self._new_output(has_types)
        labels_list, word_index_list, bounds = labels.tolist(), word_index.tolist(), offsets.tolist()
        fits = (row_len <= self.max_length).tolist()
        input_ids, attention = encoding["input_ids"], encoding["attention_mask"]
        types = encoding["token_type_ids"] if has_types else None
        for i in range(n):
            if not fits[i]:
                continue
            lo, hi = bounds[i], bounds[i + 1]
            out["input_ids"].append(input_ids[i])
            out["attention_mask"].append(attention[i])
            if types is not None:
                out["token_type_ids"].append(types[i])
            out["labels"].append(labels_list[lo:hi])
            out["word_index"].append(word_index_list[lo:hi])
            out["sentence_id"].append(indices[i])
            out["length"].append(hi - lo)
            out["was_split"].append(False)
        long_rows = [i for i in range(n) if not fits[i]]
        if long_rows:
            self._emit_windows(out, sentences, tags_batch, indices, word_ids, long_rows, encoding)
        return out


def training_window(max_length: int, stride: int, train_window_length: int | None) -> tuple[int, int]:
    """(max_length, stride) of training features: ``train_window_length`` when it is shorter than the
    model's ``max_length``, with a stride of at most a quarter of it (so windows still advance)."""
    if train_window_length is None or train_window_length >= max_length:
        return max_length, stride
    return train_window_length, min(stride, train_window_length // 4)


def build_split_features(
    ds: Dataset,
    tokenizer: Any,
    max_length: int,
    stride: int,
    label_all_subwords: bool,
    continuation_ids: list[int],
    split: str,
    num_proc: int | None = None,
    cache_file_name: str | None = None,
    fingerprint: str | None = None,
) -> Dataset:
    """Tokenized, aligned and windowed features of one split (``cache_file_name``: where map writes them)."""
    builder = BatchFeatureBuilder(tokenizer, max_length, stride, label_all_subwords, continuation_ids)
    kwargs: dict[str, Any] = {}
    if cache_file_name is not None:
        kwargs.update(cache_file_name=cache_file_name, new_fingerprint=fingerprint, load_from_cache_file=True)
    return ds.map(
        builder,
        batched=True,
        batch_size=1000,
        with_indices=True,
        remove_columns=ds.column_names,
        num_proc=num_proc,
        desc=f"tokenize {split}",
        **kwargs,
    )


def log_split_sentences(split: str, features: Dataset, n_sentences: int, max_length: int) -> None:
    n_split = count_split_sentences(features)
    if n_split:
        log.info(
            "%s: %d of %d sentences are longer than %d pieces and were split into overlapping windows",
            split,
            n_split,
            n_sentences,
            max_length,
        )


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
    because evaluation reads one prediction per word from there. :func:`ner_experiments.feature_cache.
    build_features_cached` is the same with the result cached on disk.
    """
    continuation = b_to_i_label_ids(data.label_names)
    features: dict[str, Dataset] = {}
    for split, ds in data.splits.items():
        features[split] = build_split_features(
            ds,
            tokenizer,
            max_length,
            stride,
            label_all_subwords and split == "train",
            continuation,
            split,
            num_proc,
        )
        log_split_sentences(split, features[split], len(ds), max_length)
    return features


def read_columns(ds: Dataset, names: list[str]) -> dict[str, list]:
    """Whole columns as Python lists, in one Arrow conversion (``ds[name]`` iterates row by row)."""
    table = ds.select_columns(names).with_format("arrow")[:]
    return {name: table.column(name).to_pylist() for name in names}


def count_split_sentences(features: Dataset) -> int:
    """How many sentences were split into more than one window."""
    cols = read_columns(features, ["sentence_id", "was_split"])
    return len({sid for sid, split in zip(cols["sentence_id"], cols["was_split"], strict=True) if split})
