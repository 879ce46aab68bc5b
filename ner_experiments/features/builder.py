"""Sentences → model features: tokenize, align word labels to pieces, window long sentences.

One builder serves training, evaluation and prediction. Every word of a sentence is owned by exactly
one feature, which carries the word's index at the word's first piece (``word_index``); evaluation
and prediction read one prediction per word from there, so scores are at word level whatever the
tokenizer, the alignment option or the windowing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from ner_experiments.features.windows import plan_windows

IGNORE = -100
MAX_LENGTH_CAP = 512
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_COLUMNS = ("labels", "word_index", "piece_word", "sentence_id", "length", "was_split")


def resolve_max_length(configured: int | None, tokenizer: Any, model_config: Any | None = None) -> int:
    """The configured length, else the tokenizer's; never more than 512 or the model's position table."""
    limits = []
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
        limits.append(tok_max)
    positions = getattr(model_config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        # RoBERTa-style models reserve two positions for the padding offset.
        offset = (
            2 if getattr(model_config, "model_type", "") in ("roberta", "xlm-roberta", "camembert") else 0
        )
        limits.append(positions - offset)
    if configured is not None:
        return min([configured, *limits])
    return min([MAX_LENGTH_CAP, *limits])


@dataclass(frozen=True)
class FeatureSettings:
    """At most ``max_length`` pieces per feature; windows repeat about ``stride`` pieces of context."""

    max_length: int
    stride: int
    label_all_subwords: bool = False  # continuation pieces get the word's I- tag (training only)

    @classmethod
    def for_run(cls, cfg: Any, tokenizer: Any, model_config: Any = None) -> dict[str, FeatureSettings]:
        """Each split's settings as a run's config sets them (``model.max_length``, ``model.window_stride``,
        ``label_all_subwords``, ``trainer.train_window_length``), within what the model accepts."""
        max_length = resolve_max_length(cfg.model.max_length, tokenizer, model_config)
        stride, window = cfg.model.window_stride, cfg.trainer.train_window_length
        return cls.per_split(max_length, stride, cfg.label_all_subwords, window)

    @classmethod
    def per_split(
        cls,
        max_length: int,
        stride: int,
        label_all_subwords: bool = False,
        train_window_length: int | None = None,
    ) -> dict[str, FeatureSettings]:
        """Settings of each split: evaluation reads whole sentences at ``max_length`` with first pieces
        labelled; training may use shorter windows (``train_window_length``) and label every piece."""
        evaluation = cls(max_length, stride)
        train_length, train_stride = max_length, stride
        if train_window_length is not None and train_window_length < max_length:
            train_length, train_stride = train_window_length, min(stride, train_window_length // 4)
        return {
            "train": cls(train_length, train_stride, label_all_subwords),
            "validation": evaluation,
            "test": evaluation,
        }


@dataclass
class _Encoding:
    """Tokenizer output as plain lists: model input columns and each row's word ids."""

    columns: dict[str, list[list[int]]]
    word_ids: list[list[int | None]]


def align_labels(
    word_ids: Sequence[Sequence[int | None]],
    tags: Sequence[Sequence[int]],
    owned: Sequence[tuple[int, int]],
    label_all_subwords: bool,
    continuation_ids: Sequence[int],
) -> tuple[list[list[int]], list[list[int]]]:
    """Labels per piece, and the index of the word whose prediction each piece carries (-1: none).

    The first piece of a word carries the word's tag. Continuation pieces are ignored (-100) unless
    ``label_all_subwords``, in which case they get the I- form of the tag (``continuation_ids``).
    Words outside a row's ``owned`` range (a window's context) and special tokens are ignored.
    All rows are aligned at once with numpy.
    """
    n = len(word_ids)
    lengths = np.fromiter((len(w) for w in word_ids), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter(
        (-1 if w is None else w for w in chain.from_iterable(word_ids)),
        dtype=np.int64,
        count=int(offsets[-1]),
    )
    row = np.repeat(np.arange(n), lengths)
    previous = np.empty_like(flat)
    previous[1:] = flat[:-1]
    previous[offsets[:-1][lengths > 0]] = -2  # a row's first piece never continues the row before
    bounds = np.asarray(owned, dtype=np.int64).reshape(n, 2)
    inside = (flat >= 0) & (flat >= bounds[row, 0]) & (flat < bounds[row, 1])
    first = inside & (flat != previous)

    tag_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.fromiter((len(t) for t in tags), dtype=np.int64, count=n), out=tag_offsets[1:])
    tags_flat = np.fromiter(chain.from_iterable(tags), dtype=np.int64, count=int(tag_offsets[-1]))
    piece_tag = np.zeros(len(flat), dtype=np.int64)
    piece_tag[inside] = tags_flat[tag_offsets[row[inside]] + flat[inside]]

    labels = np.full(len(flat), IGNORE, dtype=np.int64)
    labels[first] = piece_tag[first]
    if label_all_subwords:
        continuation = inside & ~first
        labels[continuation] = np.asarray(continuation_ids, dtype=np.int64)[piece_tag[continuation]]
    word_index = np.where(first, flat, -1)
    cuts = offsets.tolist()
    labels_list, index_list = labels.tolist(), word_index.tolist()
    return (
        [labels_list[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)],
        [index_list[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)],
    )


def pieces_per_word(word_ids: Sequence[int | None], n_words: int) -> list[int]:
    ids = np.array([w for w in word_ids if w is not None], dtype=np.int64)
    return np.bincount(ids, minlength=n_words).tolist() if n_words else []


def owned_piece_words(
    word_ids: Sequence[Sequence[int | None]], owned: Sequence[tuple[int, int]]
) -> list[list[int]]:
    """For each piece, the word it belongs to when the row owns that word (-1: special token or context).

    Every piece of every word of a sentence is owned by exactly one row, so sub-word scoring
    (``subword_f1``) counts each piece once, windows included.
    """
    return [
        [-1 if w is None or not a <= w < b else w for w in ids]
        for ids, (a, b) in zip(word_ids, owned, strict=True)
    ]


def count_windowed_sentences(sentence_ids: Sequence[int], was_split: Sequence[bool]) -> int:
    """How many sentences were split into more than one window."""
    return len({sid for sid, split in zip(sentence_ids, was_split, strict=True) if split})


class FeatureBuilder:
    """Build aligned, windowed features from a batch of sentences (a batched ``datasets.map`` function).

    Output columns: ``input_ids``, ``attention_mask`` (+ ``token_type_ids`` where the tokenizer has
    them), ``labels``, ``word_index``, ``piece_word``, ``sentence_id``, ``length``, ``was_split``.
    """

    def __init__(self, tokenizer: Any, settings: FeatureSettings, continuation_ids: Sequence[int]) -> None:
        self.tokenizer = tokenizer
        self.settings = settings
        self.budget = max(1, settings.max_length - tokenizer.num_special_tokens_to_add(pair=False))
        self.stride = min(settings.stride, self.budget // 2)
        self.continuation_ids = list(continuation_ids)

    def __call__(self, batch: dict[str, list], indices: Sequence[int]) -> dict[str, list]:
        sentences, encoding = self._encode_words([list(tokens) for tokens in batch["tokens"]])
        tags = batch["tags"]
        rows = range(len(sentences))
        fits = [i for i in rows if len(encoding.word_ids[i]) <= self.settings.max_length]
        out: dict[str, list] = {k: [] for k in (*encoding.columns, *OUTPUT_COLUMNS)}
        kept = _Encoding(
            {k: [v[i] for i in fits] for k, v in encoding.columns.items()},
            [encoding.word_ids[i] for i in fits],
        )
        owned = [(0, len(sentences[i])) for i in fits]
        self._emit(out, kept, [tags[i] for i in fits], owned, [indices[i] for i in fits], False)
        long_rows = [i for i in rows if len(encoding.word_ids[i]) > self.settings.max_length]
        if long_rows:
            self._emit_windows(out, sentences, tags, indices, encoding, long_rows)
        return out

    def _encode(self, sentences: list[list[str]], truncate: bool = False) -> _Encoding:
        # verbose=False: no "longer than the maximum length" warning; long sentences become windows.
        enc = self.tokenizer(
            sentences,
            is_split_into_words=True,
            truncation=truncate,
            max_length=self.settings.max_length if truncate else None,
            verbose=False,
        )
        columns = {k: list(enc[k]) for k in MODEL_INPUTS if k in enc}
        return _Encoding(columns, [enc.word_ids(i) for i in range(len(sentences))])

    def _encode_words(self, sentences: list[list[str]]) -> tuple[list[list[str]], _Encoding]:
        """Encode; a word the tokenizer turns into nothing (a lone zero-width joiner, say) becomes the
        unknown token, so it still gets a position and a prediction: only those sentences are encoded again."""
        encoding = self._encode(sentences)
        present = [{w for w in ids if w is not None} for ids in encoding.word_ids]
        vanished = [i for i, words in enumerate(sentences) if len(present[i]) != len(words)]
        if not vanished:
            return sentences, encoding
        unk = self.tokenizer.unk_token or "[UNK]"
        for i in vanished:
            sentences[i] = [w if j in present[i] else unk for j, w in enumerate(sentences[i])]
        again = self._encode([sentences[i] for i in vanished])
        for k, i in enumerate(vanished):
            for name, column in encoding.columns.items():
                column[i] = again.columns[name][k]
            encoding.word_ids[i] = again.word_ids[k]
        return sentences, encoding

    def _emit_windows(self, out, sentences, tags, indices, encoding: _Encoding, rows: list[int]) -> None:
        """Sentences longer than ``max_length``: one feature per planned window of whole words."""
        slices, starts, owned, window_tags, window_ids = [], [], [], [], []
        for i in rows:
            counts = pieces_per_word(encoding.word_ids[i], len(sentences[i]))
            for w in plan_windows(counts, self.budget, self.stride):
                slices.append(sentences[i][w.start : w.end])
                starts.append(w.start)
                owned.append((w.own_start, w.own_end))
                window_tags.append(tags[i])
                window_ids.append(indices[i])
        windows = self._encode(slices, truncate=True)
        # word ids inside a window count from its first word; make them sentence positions again
        windows.word_ids = [
            [None if x is None else x + start for x in ids]
            for ids, start in zip(windows.word_ids, starts, strict=True)
        ]
        self._emit(out, windows, window_tags, owned, window_ids, True)

    def _emit(self, out, encoding: _Encoding, tags, owned, sentence_ids, was_split: bool) -> None:
        labels, word_index = align_labels(
            encoding.word_ids, tags, owned, self.settings.label_all_subwords, self.continuation_ids
        )
        for name, column in encoding.columns.items():
            out[name] += column
        out["labels"] += labels
        out["word_index"] += word_index
        out["piece_word"] += owned_piece_words(encoding.word_ids, owned)
        out["sentence_id"] += list(sentence_ids)
        out["length"] += [len(ids) for ids in encoding.columns["input_ids"]]
        out["was_split"] += [was_split] * len(labels)
