"""Sentence lengths in a model's sub-word pieces: how many sentences training will split into windows.

The tokenizer and the length limit come from :func:`model_limits`, the one place that imports from
``ner_experiments.model`` (re-point it there if those functions move).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ner_experiments.data.contract import NerData, columns

BATCH = 1000  # sentences per tokenizer call


@dataclass
class PieceFigures:
    """Per split: pieces of each sentence (without special tokens) and the words that need attention."""

    budget: int  # pieces a window holds: max_length minus the special tokens
    max_length: int
    lengths: dict[str, list[int]] = field(default_factory=dict)
    windowed: dict[str, int] = field(default_factory=dict)  # sentences longer than the budget
    no_piece_words: dict[str, int] = field(default_factory=dict)  # words the tokenizer drops entirely
    unknown_words: dict[str, int] = field(default_factory=dict)  # words that are only [UNK] pieces


def model_limits(model_cfg: Any, cache_dir: str | None) -> tuple[Any, int]:
    """The model's tokenizer and its max length in pieces, as training resolves them."""
    from ner_experiments.model import TINY_TOKENIZER_DIR, load_tokenizer, resolve_max_length

    if model_cfg.source == "tiny":
        tokenizer = load_tokenizer(str(TINY_TOKENIZER_DIR))
    else:
        tokenizer = load_tokenizer(str(model_cfg.name_or_path), model_cfg.revision, cache_dir)
    return tokenizer, resolve_max_length(model_cfg.max_length, tokenizer)


def piece_figures(data: NerData, tokenizer: Any, max_length: int) -> PieceFigures:
    """Count pieces per sentence the way feature building does (a word with no pieces becomes [UNK])."""
    budget = max(1, max_length - tokenizer.num_special_tokens_to_add(pair=False))
    figures = PieceFigures(budget=budget, max_length=max_length)
    unk_id = tokenizer.unk_token_id
    for split, ds in data.splits.items():
        lengths, no_pieces, unknown = [], 0, 0
        sentences = columns(ds)["tokens"]
        for start in range(0, len(sentences), BATCH):
            batch = sentences[start : start + BATCH]
            encoding = tokenizer(batch, is_split_into_words=True, add_special_tokens=False, verbose=False)
            for row, words in enumerate(batch):
                per_word: list[list[int]] = [[] for _ in words]
                for piece, word in zip(encoding["input_ids"][row], encoding.word_ids(row), strict=True):
                    if word is not None:
                        per_word[word].append(piece)
                empty = sum(1 for pieces in per_word if not pieces)
                no_pieces += empty
                unknown += sum(1 for pieces in per_word if pieces and all(p == unk_id for p in pieces))
                lengths.append(sum(len(pieces) for pieces in per_word) + empty)
        figures.lengths[split] = lengths
        figures.windowed[split] = sum(1 for n in lengths if n > budget)
        figures.no_piece_words[split] = no_pieces
        figures.unknown_words[split] = unknown
    return figures
