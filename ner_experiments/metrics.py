"""Entity-level scores with seqeval, at word level, and the table printed for them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import IOB2


def compute_ner_metrics(
    gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], strict_iob2: bool = False
) -> dict[str, Any]:
    """Overall precision/recall/F1 (micro, entity level), token accuracy, and per-type scores.

    ``strict_iob2`` scores with seqeval's strict mode and the IOB2 scheme: an entity counts only when
    its B-/I- tags are exactly right (the default, lenient mode also accepts an entity started with I-).
    """
    if len(gold) != len(predicted) or any(len(g) != len(p) for g, p in zip(gold, predicted, strict=True)):
        raise ValueError("gold and predicted tags differ in shape: every word needs exactly one prediction")
    gold = [list(s) for s in gold]
    predicted = [list(s) for s in predicted]
    kwargs: dict[str, Any] = {"mode": "strict", "scheme": IOB2} if strict_iob2 else {}
    report = classification_report(gold, predicted, output_dict=True, zero_division=0, **kwargs)
    per_type = {
        name: {
            "precision": float(row["precision"]),
            "recall": float(row["recall"]),
            "f1": float(row["f1-score"]),
            "support": int(row["support"]),
        }
        for name, row in report.items()
        if not name.endswith(" avg")
    }
    return {
        "overall_precision": float(precision_score(gold, predicted, zero_division=0, **kwargs)),
        "overall_recall": float(recall_score(gold, predicted, zero_division=0, **kwargs)),
        "overall_f1": float(f1_score(gold, predicted, zero_division=0, **kwargs)),
        "overall_accuracy": float(accuracy_score(gold, predicted)),
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
