"""Reading predictions files as a researcher would: example sentences of each kind of error
(``ner-evaluate --show-errors N``) and two runs compared on the same split (``ner-evaluate --compare``).

Both work from ``predictions/<split>.conll`` files (a run's or an evaluation's), so nothing is
predicted again. Entities are decoded as the runs scored them (:func:`~ner_experiments.metrics.decode_entities`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ner_experiments.entity_errors import ERROR_KINDS, Outcome, classify_entities, count_outcomes
from ner_experiments.errors import DataError
from ner_experiments.metrics import Span, decode_entities, metrics_from_entities
from ner_experiments.predictions_file import SplitPredictionsFile, predictions_path, read_predictions

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
BOOTSTRAP_CELLS = 2_000_000  # resamples x sentences drawn at once (memory: 16 MB per column)


def mark_entities(tokens: Sequence[str], entities: Sequence[Span]) -> str:
    """``[John Smith]PER lives in [Paris]LOC``: the sentence with its entities bracketed and typed."""
    opens = {start: kind for kind, start, _ in entities}
    closes: dict[int, str] = {end - 1: kind for kind, _, end in entities}
    words = []
    for i, token in enumerate(tokens):
        word = ("[" if i in opens else "") + token
        if i in closes:
            word += f"]{closes[i]}"
        words.append(word)
    return " ".join(words)


def _span_text(tokens: Sequence[str], span: Span) -> str:
    return f'{span[0]} "{" ".join(tokens[span[1] : span[2]])}"'


def describe_outcome(tokens: Sequence[str], outcome: Outcome) -> str:
    """``gold LOC "New York" -> predicted LOC "New"``; ``missed ...`` / ``spurious ...`` for one side."""
    if outcome.predicted is None:
        assert outcome.gold is not None
        return f"missed {_span_text(tokens, outcome.gold)}"
    if outcome.gold is None:
        return f"spurious {_span_text(tokens, outcome.predicted)}"
    return f"gold {_span_text(tokens, outcome.gold)} -> predicted {_span_text(tokens, outcome.predicted)}"


def format_error_examples(file: SplitPredictionsFile, per_kind: int, strict_iob2: bool = False) -> str:
    """Up to ``per_kind`` sentences for each error kind (the first ones in the split), each with the
    entity pair at fault and both taggings, gold and predicted entities bracketed."""
    gold, pred = decode_entities(file.gold, strict_iob2), decode_entities(file.predicted, strict_iob2)
    outcomes = [classify_entities(g, p) for g, p in zip(gold, pred, strict=True)]
    totals = count_outcomes(outcomes, [])["overall"]
    blocks = []
    for kind in ERROR_KINDS[1:]:
        lines = [f"{kind} ({totals[kind]} in all):"]
        shown: list[int] = []
        for sid, sentence in enumerate(outcomes):
            if len(shown) >= per_kind:
                break
            found = [o for o in sentence if o.kind == kind]
            if not found:
                continue
            shown.append(sid)
            tokens = file.tokens[sid]
            pairs = "; ".join(describe_outcome(tokens, o) for o in found)
            lines += [
                f"  sentence {sid + 1}: {pairs}",
                f"    gold: {mark_entities(tokens, gold[sid])}",
                f"    pred: {mark_entities(tokens, pred[sid])}",
            ]
        if not shown:
            lines.append("  none")
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


# --- Two runs on one split ----------------------------------------------------------------------


@dataclass
class BootstrapResult:
    """F1(B) - F1(A) on the data, its 95% percentile interval over resampled sentences, and the share of
    resamples where B scores higher."""

    difference: float
    low: float
    high: float
    b_better: float
    resamples: int
    seed: int


def _f1(tp: np.ndarray, predicted: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Micro F1 from summed counts: 2 TP / (predicted + gold), 0 where there is nothing."""
    denominator = predicted + gold
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def paired_bootstrap(
    tp_a: Sequence[int],
    predicted_a: Sequence[int],
    tp_b: Sequence[int],
    predicted_b: Sequence[int],
    gold: Sequence[int],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> BootstrapResult:
    """Paired bootstrap over sentences of the entity-level F1 difference: each resample draws the
    sentences with replacement, the same ones for both runs, and sums their counts."""
    columns = np.asarray([tp_a, predicted_a, tp_b, predicted_b, gold], dtype=np.int64)
    n = columns.shape[1]
    if n == 0:
        raise DataError("no sentences to compare")
    observed = columns.sum(axis=1)
    difference = float(
        _f1(observed[2], observed[3], observed[4]) - _f1(observed[0], observed[1], observed[4])
    )
    rng = np.random.default_rng(seed)
    chunk = max(1, BOOTSTRAP_CELLS // n)
    diffs = []
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, resamples - start), n))
        sums = [columns[k][idx].sum(axis=1) for k in range(5)]
        diffs.append(_f1(sums[2], sums[3], sums[4]) - _f1(sums[0], sums[1], sums[4]))
    d = np.concatenate(diffs)
    low, high = np.percentile(d, [2.5, 97.5])
    return BootstrapResult(difference, float(low), float(high), float(np.mean(d > 0)), resamples, seed)


def resolve_predictions(ref: str, split: str) -> Path:
    """A ``.conll`` file as given; a run directory or an evaluation folder: its ``predictions/<split>.conll``."""
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise DataError(f"{ref}: no such run directory, evaluation folder or predictions file")
    found = predictions_path(path, split)
    if not found.is_file():
        raise DataError(
            f"{ref} has no predictions/{split}.conll: give a run (or ner-evaluate folder) that scored "
            f"the {split} split, or another --split"
        )
    return found


def _decoding_mode(ref: str) -> bool | None:
    """Whether a run or evaluation scored in strict IOB2 mode, when its folder says so."""
    path = Path(ref).expanduser()
    folder = path if path.is_dir() else path.parent.parent
    config = folder / "config.yaml"
    if config.is_file():
        from omegaconf import OmegaConf

        return bool(OmegaConf.select(OmegaConf.load(config), "metrics.strict_iob2", default=False))
    metrics = folder / "metrics.json"
    if metrics.is_file():
        strict = json.loads(metrics.read_text(encoding="utf-8")).get("run", {}).get("strict_iob2")
        return None if strict is None else bool(strict)
    return None


@dataclass
class _Side:
    name: str
    file: SplitPredictionsFile
    entities: list[list[Span]]
    metrics: dict[str, Any]
    errors: dict[str, int]


def _side(name: str, file: SplitPredictionsFile, gold: list[list[Span]], strict: bool) -> _Side:
    entities = decode_entities(file.predicted, strict)
    metrics = metrics_from_entities(file.gold, file.predicted, gold, entities)
    outcomes: list[list[Outcome]] = [classify_entities(g, p) for g, p in zip(gold, entities, strict=True)]
    return _Side(name, file, entities, metrics, count_outcomes(outcomes, [])["overall"])


def compare_runs(ref_a: str, ref_b: str, split: str = "test", examples: int = 3) -> str:
    """The report ``ner-evaluate --compare`` prints: scores and error counts side by side, the sentences
    one run gets right and the other wrong, and a paired bootstrap of the F1 difference."""
    path_a, path_b = resolve_predictions(ref_a, split), resolve_predictions(ref_b, split)
    file_a, file_b = read_predictions(path_a), read_predictions(path_b)
    if file_a.tokens != file_b.tokens or file_a.gold != file_b.gold:
        raise DataError(
            f"{path_a} and {path_b} are not the same sentences with the same gold tags: compare two runs "
            "scored on the same data and split"
        )
    strict = _common_decoding_mode(ref_a, ref_b)
    gold = decode_entities(file_a.gold, strict)
    a, b = _side("A", file_a, gold, strict), _side("B", file_b, gold, strict)
    lines = [
        f"A: {path_a}",
        f"B: {path_b}",
        f"{split}: {len(gold)} sentences, {sum(len(g) for g in gold)} gold entities; chunks decoded in "
        + ("strict IOB2 mode" if strict else "seqeval's default mode"),
        "",
        f"{'':<24}{'A':>10}{'B':>10}{'B - A':>10}",
    ]

    def row(label: str, va: float, vb: float, fmt: str) -> None:
        lines.append(f"{label:<24}{va:>10{fmt}}{vb:>10{fmt}}{vb - va:>+10{fmt}}")

    for key in ("precision", "recall", "f1"):
        row(key, a.metrics[f"overall_{key}"], b.metrics[f"overall_{key}"], ".4f")
    for kind in sorted(set(a.metrics["per_type"]) | set(b.metrics["per_type"])):
        fa = a.metrics["per_type"].get(kind, {}).get("f1", 0.0)
        fb = b.metrics["per_type"].get(kind, {}).get("f1", 0.0)
        row(f"f1 {kind}", fa, fb, ".4f")
    for kind in ERROR_KINDS:
        row(kind, a.errors[kind], b.errors[kind], "d")
    lines += ["", *_right_and_wrong(a, b, gold, examples)]
    tp_a, tp_b = [_true_positives(g, e) for g, e in ((gold, a.entities), (gold, b.entities))]
    boot = paired_bootstrap(
        tp_a,
        [len(e) for e in a.entities],
        tp_b,
        [len(e) for e in b.entities],
        [len(g) for g in gold],
    )
    lines += [
        "",
        f"Paired bootstrap over sentences ({boot.resamples:,} resamples, seed {boot.seed}): "
        f"F1(B) - F1(A) = {boot.difference:+.4f}, 95% interval [{boot.low:+.4f}, {boot.high:+.4f}]; "
        f"B higher in {100 * boot.b_better:.1f}% of resamples",
        "The interval "
        + (
            "excludes 0: the difference holds beyond sentence sampling."
            if boot.low > 0 or boot.high < 0
            else "includes 0: no clear difference on this data."
        ),
    ]
    return "\n".join(lines)


def _common_decoding_mode(ref_a: str, ref_b: str) -> bool:
    """Whether both runs decoded chunks in strict IOB2 mode; :class:`DataError` when they differ."""
    modes = {m for m in (_decoding_mode(ref_a), _decoding_mode(ref_b)) if m is not None}
    if len(modes) > 1:
        raise DataError(
            "one run scored in strict IOB2 mode (metrics.strict_iob2=true) and the other in the default "
            "mode: their F1s are not comparable"
        )
    return modes.pop() if modes else False


def _true_positives(gold: list[list[Span]], predicted: list[list[Span]]) -> list[int]:
    return [len(set(g) & set(p)) for g, p in zip(gold, predicted, strict=True)]


def _right_and_wrong(a: _Side, b: _Side, gold: list[list[Span]], examples: int) -> list[str]:
    """Sentences whose entities a run gets exactly right, counted both ways, with a few examples."""
    right_a = [sorted(g) == sorted(p) for g, p in zip(gold, a.entities, strict=True)]
    right_b = [sorted(g) == sorted(p) for g, p in zip(gold, b.entities, strict=True)]
    only_a = [i for i, (x, y) in enumerate(zip(right_a, right_b, strict=True)) if x and not y]
    only_b = [i for i, (x, y) in enumerate(zip(right_a, right_b, strict=True)) if y and not x]
    both = sum(x and y for x, y in zip(right_a, right_b, strict=True))
    lines = [
        "Sentences with every entity right: "
        f"both {both}, only A {len(only_a)}, only B {len(only_b)}, neither {len(gold) - both - len(only_a) - len(only_b)}"
    ]
    tokens = a.file.tokens
    for label, ids in (("A", only_a), ("B", only_b)):
        if ids and examples > 0:
            lines.append(f"Right in {label} only (first {min(examples, len(ids))} of {len(ids)}):")
        for sid in ids[:examples]:
            lines += [
                f"  sentence {sid + 1}",
                f"    gold: {mark_entities(tokens[sid], gold[sid])}",
                f"    A:    {mark_entities(tokens[sid], a.entities[sid])}",
                f"    B:    {mark_entities(tokens[sid], b.entities[sid])}",
            ]
    return lines
