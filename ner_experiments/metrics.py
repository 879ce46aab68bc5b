"""Entity-level scores with seqeval, at word level, and the table printed for them."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

from seqeval.metrics.sequence_labeling import get_entities
from seqeval.scheme import IOB2, Entities

_IOB2_TAG = re.compile(r"^(O|[BI]-.+)$")
Span = tuple[str, int, int]  # entity type, first word, end (exclusive), within one sentence
Spans = dict[str, set[tuple[int, int, int]]]  # entity type -> {(sentence, start, end)}


def decode_entities(tags: Sequence[Sequence[str]], strict_iob2: bool = False) -> list[list[Span]]:
    """Each sentence's entities, decoded from IOB2 tags exactly as seqeval scores them.

    Default (seqeval's default mode, conlleval's repair): an ``I-X`` that does not continue an ``X``
    entity starts a new one. ``strict_iob2`` (seqeval's strict mode with the IOB2 scheme): an entity
    must start with ``B-X``; tokens of one that starts with ``I-X`` are not an entity (discarded).
    """
    tags = [list(s) for s in tags]
    if strict_iob2:
        return [[(e.tag, e.start, e.end) for e in sentence] for sentence in Entities(tags, IOB2).entities]
    if all(_IOB2_TAG.match(t) for t in {t for s in tags for t in s}):
        return [_decode_iob2(s) for s in tags]
    # Other tag shapes: seqeval's own decoder, which joins the sentences with "O" between them.
    starts = list(accumulate((len(s) + 1 for s in tags), initial=0))
    out: list[list[Span]] = [[] for _ in tags]
    for kind, start, end in get_entities(tags):
        sid = bisect_right(starts, start) - 1
        out[sid].append((kind, start - starts[sid], end - starts[sid] + 1))
    return out


def _decode_iob2(tags: Sequence[str]) -> list[Span]:
    """seqeval's ``get_entities`` for O / B-X / I-X tags (a test checks they agree), in one tight loop."""
    out: list[Span] = []
    kind, start = None, 0
    for i, tag in enumerate(tags):
        if tag == "O":
            if kind is not None:
                out.append((kind, start, i))
                kind = None
        elif tag[0] == "B" or tag[2:] != kind:
            if kind is not None:
                out.append((kind, start, i))
            kind, start = tag[2:], i
    if kind is not None:
        out.append((kind, start, len(tags)))
    return out


def _spans(entities: Sequence[Sequence[Span]]) -> Spans:
    out: Spans = {}
    for sid, sentence in enumerate(entities):
        for kind, start, end in sentence:
            out.setdefault(kind, set()).add((sid, start, end))
    return out


def _scores(tp: int, n_pred: int, n_true: int) -> tuple[float, float, float]:
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _check_shapes(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> None:
    if len(gold) != len(predicted) or any(len(g) != len(p) for g, p in zip(gold, predicted, strict=True)):
        raise ValueError("gold and predicted tags differ in shape: every word needs exactly one prediction")


def compute_ner_metrics(
    gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], strict_iob2: bool = False
) -> dict[str, Any]:
    """Overall precision/recall/F1 (micro, entity level), token accuracy, and per-type scores.

    The numbers are seqeval's (``classification_report``, ``f1_score``... with ``zero_division=0``; a test
    checks they agree), computed from one pass over the entities. ``strict_iob2`` scores with seqeval's
    strict mode and the IOB2 scheme: an entity counts only when its B-/I- tags are exactly right (the
    default, lenient mode also accepts an entity started with I-).
    """
    _check_shapes(gold, predicted)
    return metrics_from_entities(
        gold, predicted, decode_entities(gold, strict_iob2), decode_entities(predicted, strict_iob2)
    )


def metrics_from_entities(
    gold: Sequence[Sequence[str]],
    predicted: Sequence[Sequence[str]],
    gold_entities: Sequence[Sequence[Span]],
    predicted_entities: Sequence[Sequence[Span]],
) -> dict[str, Any]:
    """:func:`compute_ner_metrics` from entities already decoded with :func:`decode_entities`."""
    _check_shapes(gold, predicted)
    true_spans, pred_spans = _spans(gold_entities), _spans(predicted_entities)
    per_type: dict[str, dict[str, Any]] = {}
    totals = [0, 0, 0]  # true positives, predicted, gold
    for name in sorted(set(true_spans) | set(pred_spans)):
        t, p = true_spans.get(name, set()), pred_spans.get(name, set())
        counts = (len(t & p), len(p), len(t))
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
        precision, recall, f1 = _scores(*counts)
        per_type[name] = {"precision": precision, "recall": recall, "f1": f1, "support": len(t)}
    precision, recall, f1 = _scores(*totals)
    n_words = sum(len(s) for s in gold)
    correct = sum(g == p for gs, ps in zip(gold, predicted, strict=True) for g, p in zip(gs, ps, strict=True))
    return {
        "overall_precision": precision,
        "overall_recall": recall,
        "overall_f1": f1,
        "overall_accuracy": correct / n_words if n_words else 0.0,
        "per_type": per_type,
    }


def format_metrics_table(title: str, metrics: dict[str, Any]) -> str:
    """A plain-text table: one row per entity type, then the overall row."""
    lines = [title, f"{'type':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    total = 0
    for name, row in sorted(metrics.get("per_type", {}).items()):
        total += row["support"]
        lines.append(
            f"{name:<16}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}{row['support']:>10d}"
        )
    lines.append(
        f"{'overall':<16}{metrics['overall_precision']:>10.4f}{metrics['overall_recall']:>10.4f}"
        f"{metrics['overall_f1']:>10.4f}{total:>10d}"
    )
    lines.append(f"token accuracy {metrics['overall_accuracy']:.4f}")
    if "subword_f1" in metrics:
        lines.append(
            f"sub-word F1 {metrics['subword_f1']:.4f} (the tutorial's scoring: every piece labelled)"
        )
    return "\n".join(lines)
