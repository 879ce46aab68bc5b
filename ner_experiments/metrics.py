"""Entity-level scores with seqeval, at word level, and the table printed for them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from seqeval.metrics.sequence_labeling import get_entities
from seqeval.scheme import IOB2, Entities

Spans = dict[str, set[tuple[int, int, int]]]  # entity type -> {(sentence, start, end)}


def _spans(tags: list[list[str]], strict_iob2: bool) -> Spans:
    """Entities per type, found once per evaluation (seqeval's own functions would redo this per score)."""
    out: Spans = {}
    if strict_iob2:
        for sentence in Entities(tags, IOB2).entities:
            for e in sentence:
                out.setdefault(e.tag, set()).add((e.sent_id, e.start, e.end))
    else:
        # get_entities joins the sentences with "O" between them: positions are unique across sentences.
        for kind, start, end in get_entities(tags):
            out.setdefault(kind, set()).add((0, start, end))
    return out


def _scores(tp: int, n_pred: int, n_true: int) -> tuple[float, float, float]:
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def compute_ner_metrics(
    gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], strict_iob2: bool = False
) -> dict[str, Any]:
    """Overall precision/recall/F1 (micro, entity level), token accuracy, and per-type scores.

    The numbers are seqeval's (``classification_report``, ``f1_score``... with ``zero_division=0``; a test
    checks they agree), computed from one pass over the entities. ``strict_iob2`` scores with seqeval's
    strict mode and the IOB2 scheme: an entity counts only when its B-/I- tags are exactly right (the
    default, lenient mode also accepts an entity started with I-).
    """
    if len(gold) != len(predicted) or any(len(g) != len(p) for g, p in zip(gold, predicted, strict=True)):
        raise ValueError("gold and predicted tags differ in shape: every word needs exactly one prediction")
    gold = [list(s) for s in gold]
    predicted = [list(s) for s in predicted]
    true_spans, pred_spans = _spans(gold, strict_iob2), _spans(predicted, strict_iob2)
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
    return "\n".join(lines)
