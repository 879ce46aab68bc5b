"""Tagging text with a saved model: word-level entities with their character offsets.

Raw text is split into words (a simple Unicode-aware tokenizer that keeps Bengali vowel signs and
other combining marks inside words, or plain whitespace), then tagged word by word with
:meth:`~ner_experiments.model.NerModel.predict_words`, exactly as evaluation tags a sentence. Entities are IOB2 spans of words, mapped back to the input text.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ner_experiments.errors import DataError

if TYPE_CHECKING:
    from ner_experiments.model import NerModel

log = logging.getLogger(__name__)

WORD_SPLITS = ("simple", "whitespace")
JOINERS = {"\u200c", "\u200d", "_"}  # zero-width (non-)joiners are part of Bengali/Indic words


@dataclass
class Entity:
    """One predicted entity: its text, type, mean word probability, character span and word span."""

    text: str
    type: str
    score: float
    start: int  # character offsets into the input text, end exclusive
    end: int
    word_start: int  # word indices, end exclusive
    word_end: int


# --- Words and offsets ------------------------------------------------------------------------------


def _is_word_char(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat[0] in "LNM" or ch in JOINERS


def split_words(text: str, mode: str = "simple") -> list[tuple[str, int, int]]:
    """Words of ``text`` with their ``(start, end)`` character offsets.

    ``simple``: runs of letters, digits and combining marks are words (so Bengali ``বিষয়ে`` stays one
    word) and every other visible character (punctuation such as ``,`` or the danda ``।``) is a word
    of its own, as in WikiANN and CoNLL. ``whitespace``: split at whitespace only (pre-tokenized text).
    """
    if mode not in WORD_SPLITS:
        raise DataError(f"word split {mode!r} is not valid: use one of {', '.join(WORD_SPLITS)}")
    words: list[tuple[str, int, int]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        j = i + 1
        if mode == "whitespace":
            while j < n and not text[j].isspace():
                j += 1
        elif _is_word_char(ch):
            while j < n and _is_word_char(text[j]):
                j += 1
        else:  # one punctuation mark or symbol; keep following combining marks with it
            while j < n and unicodedata.category(text[j])[0] == "M":
                j += 1
        words.append((text[i:j], i, j))
        i = j
    return words


def offsets_for_tokens(tokens: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """Pre-tokenized input: the text they form joined by single spaces, and each token's offsets in it."""
    spans, pos = [], 0
    for tok in tokens:
        spans.append((pos, pos + len(tok)))
        pos += len(tok) + 1
    return " ".join(tokens), spans


def decode_entities(
    labels: Sequence[str], scores: Sequence[float], text: str, spans: Sequence[tuple[int, int]]
) -> list[Entity]:
    """IOB2 word labels → entities (lenient, like seqeval's default: an I- after O or another type starts one)."""
    entities: list[Entity] = []
    current: tuple[str, int] | None = None

    def close(end_word: int) -> None:
        if current is None:
            return
        kind, first = current
        start, end = spans[first][0], spans[end_word - 1][1]
        mean = sum(scores[first:end_word]) / (end_word - first)
        entities.append(Entity(text[start:end], kind, round(float(mean), 4), start, end, first, end_word))

    for i, label in enumerate(labels):
        prefix, kind = (label[:2], label[2:]) if label != "O" else ("O", "")
        if prefix == "B-" or (prefix == "I-" and (current is None or current[0] != kind)):
            close(i)
            current = (kind, i)
        elif prefix == "O":
            close(i)
            current = None
    close(len(labels))
    return entities


# --- Predicting --------------------------------------------------------------------------------------


def predict_texts(
    model: NerModel, texts: Sequence[str], word_split: str = "simple", batch_size: int = 32
) -> list[dict[str, Any]]:
    """Raw texts → one record each: ``{"text", "entities": [{text, type, score, start, end, ...}]}``."""
    split = [split_words(text, word_split) for text in texts]
    labels, scores = model.predict_words([[w for w, _, _ in words] for words in split], batch_size)
    out = []
    for text, words, labs, scs in zip(texts, split, labels, scores, strict=True):
        spans = [(s, e) for _, s, e in words]
        out.append({"text": text, "entities": [asdict(e) for e in decode_entities(labs, scs, text, spans)]})
    return out


def predict_tokens(
    model: NerModel, sentences: Sequence[Sequence[str]], batch_size: int = 32
) -> list[dict[str, Any]]:
    """Pre-tokenized sentences → records with ``tokens``, the space-joined ``text`` and entities in it."""
    labels, scores = model.predict_words(sentences, batch_size)
    out = []
    for tokens, labs, scs in zip(sentences, labels, scores, strict=True):
        text, spans = offsets_for_tokens(tokens)
        entities = [asdict(e) for e in decode_entities(labs, scs, text, spans)]
        out.append({"tokens": list(tokens), "text": text, "entities": entities})
    return out


def parse_pretokenized_line(line: str, lineno: int, source: str) -> list[str]:
    """A JSON list of tokens, a JSON object with ``tokens``, or whitespace-separated tokens."""
    stripped = line.strip()
    if stripped.startswith(("[", "{")):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise DataError(
                f"{source}:{lineno}: not valid JSON ({err.msg}): give a list of tokens per line"
            ) from None
        tokens = value.get("tokens") if isinstance(value, dict) else value
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise DataError(f'{source}:{lineno}: expected a JSON list of strings or an object with "tokens"')
        return [t for t in tokens]
    return stripped.split()
