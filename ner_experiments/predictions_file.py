"""``predictions/<split>.conll``: each word of a split with its gold and predicted tag, as scored.

One line per word, ``token<TAB>gold<TAB>predicted``, a blank line after each sentence, sentences in
input order, UTF-8. A tab, newline or carriage return inside a token is written as a space (so the
file stays three columns); the tag columns are exactly what was scored, so re-scoring the file with
seqeval gives the run's metrics. The project's CoNLL reader reads it as data (first column the token,
last column the tag: the predictions).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ner_experiments.errors import DataError

PREDICTIONS_DIR = "predictions"
_UNSAFE = re.compile(r"[\t\n\r]")


@dataclass
class SplitPredictionsFile:
    """A predictions file read back: tokens, gold tags and predicted tags per sentence."""

    tokens: list[list[str]]
    gold: list[list[str]]
    predicted: list[list[str]]


def predictions_path(folder: str | os.PathLike, split: str) -> Path:
    """``<folder>/predictions/<split>.conll``."""
    return Path(folder) / PREDICTIONS_DIR / f"{split}.conll"


def write_predictions(
    path: str | os.PathLike,
    tokens: Sequence[Sequence[str]],
    gold: Sequence[Sequence[str]],
    predicted: Sequence[Sequence[str]],
) -> Path:
    """Write the file at once (a temporary file renamed into place: never half written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    for words, gold_tags, pred_tags in zip(tokens, gold, predicted, strict=True):
        for word, g, p in zip(words, gold_tags, pred_tags, strict=True):
            lines.append(f"{_UNSAFE.sub(' ', word)}\t{g}\t{p}\n")
        lines.append("\n")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(lines), encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_split_predictions(
    folder: str | os.PathLike,
    split: str,
    tokens: Sequence[Sequence[str]],
    gold_ids: Sequence[Sequence[int]],
    predicted_ids: Sequence[Sequence[int]],
    label_names: Sequence[str],
) -> Path:
    """``<folder>/predictions/<split>.conll`` from label ids."""
    return write_predictions(
        predictions_path(folder, split),
        tokens,
        [[label_names[t] for t in tags] for tags in gold_ids],
        [[label_names[t] for t in tags] for tags in predicted_ids],
    )


def read_predictions(path: str | os.PathLike) -> SplitPredictionsFile:
    """Read a file written by :func:`write_predictions`; a malformed one is one :class:`DataError` line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"no predictions file at {path}: give a finished run, an evaluation folder or a .conll file"
        )
    out = SplitPredictionsFile([], [], [])
    sentence: list[tuple[str, str, str]] = []

    def end_sentence() -> None:
        if sentence:
            out.tokens.append([t for t, _, _ in sentence])
            out.gold.append([g for _, g, _ in sentence])
            out.predicted.append([p for _, _, p in sentence])
            sentence.clear()

    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line:
            end_sentence()
            continue
        columns = line.split("\t")
        if len(columns) != 3:
            raise DataError(
                f"{path}:{number}: expected token<TAB>gold<TAB>predicted, found {len(columns)} columns"
            )
        sentence.append((columns[0], columns[1], columns[2]))
    end_sentence()
    return out
