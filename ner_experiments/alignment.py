"""Word labels → sub-word labels, and long sentences → overlapping windows.

A *feature* is what the model sees: at most ``max_length`` pieces with special tokens. Every word of a
sentence is *owned* by exactly one feature, which carries the word's index at the word's first piece
(``word_index``); evaluation reads one prediction per word from there, so scores are at word level
whatever the tokenizer or alignment option, and no word is dropped by truncation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

IGNORE = -100


@dataclass(frozen=True)
class Window:
    """Words ``[start, end)`` go into one feature; words ``[own_start, own_end)`` are scored from it."""

    start: int
    end: int
    own_start: int
    own_end: int


def plan_windows(piece_counts: Sequence[int], budget: int, stride: int) -> list[Window]:
    """Split a sentence into windows of at most ``budget`` pieces that overlap by about ``stride`` pieces.

    Each word is owned by the window in which it sits furthest from an edge, so it is predicted with
    context on both sides. A single word longer than the budget gets a window of its own (its pieces
    beyond the budget are cut; its first piece, which carries the prediction, is kept).
    """
    n = len(piece_counts)
    if n == 0:
        return [Window(0, 0, 0, 0)]
    if sum(piece_counts) <= budget:
        return [Window(0, n, 0, n)]
    windows: list[Window] = []
    start, own_start = 0, 0

    def fill(first: int) -> int:
        end, used = first, 0
        while end < n and (used + piece_counts[end] <= budget or end == first):
            used += piece_counts[end]
            end += 1
        return end

    while True:
        end = fill(start)
        if end <= own_start:  # the carried context left no room for the next owned word
            start = own_start
            end = fill(start)
        if end >= n:
            windows.append(Window(start, n, own_start, n))
            return windows
        # The next window starts so that it repeats about `stride` pieces of this one.
        next_start, carried = end, 0
        while next_start - 1 > start and carried + piece_counts[next_start - 1] <= stride:
            next_start -= 1
            carried += piece_counts[next_start]
        # Words in the overlap are owned by whichever window they sit further inside.
        own_end = max(own_start + 1, min(end, (next_start + end + 1) // 2))
        windows.append(Window(start, end, own_start, own_end))
        start, own_start = min(next_start, own_end), own_end


def align_labels_to_subwords(
    word_ids: Sequence[int | None],
    word_tags: Sequence[int],
    label_all_subwords: bool,
    continuation_ids: Sequence[int],
    owned: tuple[int, int] | None = None,
) -> tuple[list[int], list[int]]:
    """Labels per piece, and the index of the word whose prediction each piece carries (-1: none).

    The first piece of a word carries the word's tag. Continuation pieces are ignored (-100) unless
    ``label_all_subwords``, in which case they get the I- form of the tag (``continuation_ids``).
    Words outside ``owned`` (a window's context) are ignored. Special tokens are always ignored.
    """
    lo, hi = owned if owned is not None else (0, len(word_tags))
    labels: list[int] = []
    word_index: list[int] = []
    previous: int | None = None
    for wid in word_ids:
        if wid is None or not lo <= wid < hi:
            labels.append(IGNORE)
            word_index.append(-1)
        elif wid != previous:
            labels.append(int(word_tags[wid]))
            word_index.append(wid)
        else:
            labels.append(int(continuation_ids[word_tags[wid]]) if label_all_subwords else IGNORE)
            word_index.append(-1)
        previous = wid
    return labels, word_index


def _pieces_per_word(word_ids: Sequence[int | None], n_words: int) -> np.ndarray:
    ids = np.array([w for w in word_ids if w is not None], dtype=np.int64)
    return np.bincount(ids, minlength=n_words) if n_words else np.zeros(0, dtype=np.int64)


class _WindowCutter:
    """Cuts windows of whole words out of one sentence's encoding, special tokens kept at both ends."""

    def __init__(self, encoding: Any, row: int, word_ids: Sequence[int | None], budget: int) -> None:
        self.columns = {
            k: encoding[k][row] for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoding
        }
        self.word_ids = list(word_ids)
        self.budget = budget
        n = len(self.word_ids)
        self.prefix = next((p for p, w in enumerate(self.word_ids) if w is not None), n)
        self.suffix_start = n - next((p for p, w in enumerate(reversed(self.word_ids)) if w is not None), n)
        self.content = np.array(self.word_ids[self.prefix : self.suffix_start], dtype=np.int64)

    def cut(self, w: Window) -> tuple[dict[str, list[list[int]]], list[int | None]]:
        lo = self.prefix + int(np.searchsorted(self.content, w.start, side="left"))
        hi = self.prefix + int(np.searchsorted(self.content, w.end - 1, side="right"))
        hi = min(hi, lo + self.budget)  # a single word longer than the budget keeps its first pieces

        def take(values: list) -> list:
            return values[: self.prefix] + values[lo:hi] + values[self.suffix_start :]

        return {k: [take(v)] for k, v in self.columns.items()}, take(self.word_ids)


class FeatureBuilder:
    """Tokenize sentences in batches and build aligned, windowed features (a ``datasets.map`` function).

    Output columns: ``input_ids``, ``attention_mask`` (+ ``token_type_ids`` where the tokenizer has
    them), ``labels``, ``word_index``, ``sentence_id``, ``length``, ``was_split``.
    """

    def __init__(
        self,
        tokenizer: Any,
        max_length: int,
        stride: int,
        label_all_subwords: bool,
        continuation_ids: Sequence[int],
    ) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.num_special = tokenizer.num_special_tokens_to_add(pair=False)
        self.budget = max(1, max_length - self.num_special)
        self.stride = min(stride, self.budget // 2)
        self.label_all_subwords = label_all_subwords
        self.continuation_ids = list(continuation_ids)
        self._cutting_failed = False  # set once a window cut from a sentence differed from tokenizing it

    def _tokenize(self, sentences: list[list[str]]) -> Any:
        # verbose=False: no "sequence length is longer than ... will result in indexing errors" warning,
        # which does not apply here: sentences longer than max_length become windows.
        return self.tokenizer(
            sentences, is_split_into_words=True, truncation=False, add_special_tokens=True, verbose=False
        )

    def _replace_empty_words(
        self, sentences: list[list[str]], encoding: Any, rows: Sequence[int] | None = None
    ) -> list[list[str]]:
        """Words the tokenizer turns into nothing (e.g. a lone zero-width space) become the unknown token,
        so they still get a position and a prediction (looking only at ``rows`` if given)."""
        fixed = list(sentences)
        unk = self.tokenizer.unk_token or "[UNK]"
        for i in range(len(sentences)) if rows is None else rows:
            words = sentences[i]
            present = set(w for w in encoding.word_ids(i) if w is not None)
            if len(present) != len(words):
                fixed[i] = [w if j in present else unk for j, w in enumerate(words)]
        return fixed

    def __call__(self, batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        sentences = [list(tokens) for tokens in batch["tokens"]]
        tags_batch = batch["tags"]
        encoding = self._tokenize(sentences)
        fixed = self._replace_empty_words(sentences, encoding)
        if fixed != sentences:
            sentences, encoding = fixed, self._tokenize(fixed)

        out = self._new_output("token_type_ids" in encoding)
        word_ids = [encoding.word_ids(i) for i in range(len(sentences))]
        long_rows = []
        for i in range(len(sentences)):
            if len(word_ids[i]) <= self.max_length:
                self._emit(out, encoding, i, word_ids[i], tags_batch[i], indices[i], None, False)
            else:
                long_rows.append(i)
        if long_rows:
            self._emit_windows(out, sentences, tags_batch, indices, word_ids, long_rows, encoding)
        return out

    @staticmethod
    def _new_output(has_token_types: bool) -> dict[str, list]:
        keys = ["input_ids", "attention_mask", "labels", "word_index", "sentence_id", "length", "was_split"]
        return {k: [] for k in keys + (["token_type_ids"] if has_token_types else [])}

    def _emit_windows(self, out, sentences, tags_batch, indices, word_ids, rows, encoding=None) -> None:
        """Sentences longer than ``max_length``: plan overlapping windows and emit one feature per window.

        A window's pieces are cut from the sentence's own ``encoding`` when the tokenizer gives a word
        the same pieces wherever it stands (WordPiece, byte-level BPE with a prefix space, SentencePiece
        that marks every word): checked on one window per batch against tokenizing the window's words
        again, which is what happens otherwise. Cutting saves tokenizing long sentences twice.
        """
        planned = []
        for i in rows:
            counts = _pieces_per_word(word_ids[i], len(sentences[i])).tolist()
            planned.append((i, plan_windows(counts, self.budget, self.stride)))
        if encoding is not None and self._cutting_matches(encoding, sentences, word_ids, planned):
            for i, windows in planned:
                cutter = _WindowCutter(encoding, i, word_ids[i], self.budget)
                for w in windows:
                    piece_ids, piece_word_ids = cutter.cut(w)
                    owned = (w.own_start, w.own_end)
                    self._emit(out, piece_ids, 0, piece_word_ids, tags_batch[i], indices[i], owned, True)
            return
        slices = [sentences[i][w.start : w.end] for i, windows in planned for w in windows]
        window_enc = self.tokenizer(
            slices, is_split_into_words=True, truncation=True, max_length=self.max_length
        )
        k = 0
        for i, windows in planned:
            for w in windows:
                # word ids inside the window are relative to w.start; shift them back
                shifted = [None if x is None else x + w.start for x in window_enc.word_ids(k)]
                owned = (w.own_start, w.own_end)
                self._emit(out, window_enc, k, shifted, tags_batch[i], indices[i], owned, True)
                k += 1

    def _cutting_matches(self, encoding, sentences, word_ids, planned) -> bool:
        """Whether a window cut from the sentence's pieces equals the window's words tokenized anew
        (tried on the first window that does not start the sentence; once it differs, never cut again)."""
        if self._cutting_failed:
            return False
        for i, windows in planned:
            for w in windows:
                if w.start == 0:
                    continue
                cut, cut_word_ids = _WindowCutter(encoding, i, word_ids[i], self.budget).cut(w)
                fresh = self.tokenizer(
                    [sentences[i][w.start : w.end]],
                    is_split_into_words=True,
                    truncation=True,
                    max_length=self.max_length,
                )
                same = all(cut[k][0] == fresh[k][0] for k in cut) and cut_word_ids == [
                    None if x is None else x + w.start for x in fresh.word_ids(0)
                ]
                if not same:
                    self._cutting_failed = True
                return same
        return False

    def _emit(self, out, encoding, row, word_ids, tags, sentence_id, owned, was_split) -> None:
        labels, word_index = align_labels_to_subwords(
            word_ids, tags, self.label_all_subwords, self.continuation_ids, owned
        )
        ids = encoding["input_ids"][row]
        out["input_ids"].append(ids)
        out["attention_mask"].append(encoding["attention_mask"][row])
        if "token_type_ids" in out:
            out["token_type_ids"].append(encoding["token_type_ids"][row])
        out["labels"].append(labels)
        out["word_index"].append(word_index)
        out["sentence_id"].append(sentence_id)
        out["length"].append(len(ids))
        out["was_split"].append(was_split)
