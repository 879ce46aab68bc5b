"""A confusion matrix of entity types, from gold and predicted IOB2 tags, and its PNG plot.

Entities are matched by exact word span. A gold entity whose span was predicted with some type counts
in (gold type, predicted type); a gold entity with no prediction of that span counts in
(gold type, ``none``) — missed or mis-bounded; a predicted span that is not a gold entity counts in
(``none``, predicted type) — spurious.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seqeval.metrics.sequence_labeling import get_entities

NONE = "none"


def entity_confusion(
    gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], entity_types: Sequence[str] = ()
) -> dict[str, Any]:
    """``{"labels": [types..., "none"], "matrix": rows = gold, columns = predicted}`` (counts).

    ``entity_types`` (e.g. every type the model predicts) get a row and a column even when absent.
    """
    counts: dict[tuple[str, str], int] = {}
    types: set[str] = set(entity_types)
    for g_tags, p_tags in zip(gold, predicted, strict=True):
        g = {(s, e): t for t, s, e in get_entities(list(g_tags))}
        p = {(s, e): t for t, s, e in get_entities(list(p_tags))}
        types.update(g.values(), p.values())
        for span, kind in g.items():
            key = (kind, p.get(span, NONE))
            counts[key] = counts.get(key, 0) + 1
        for span, kind in p.items():
            if span not in g:
                counts[(NONE, kind)] = counts.get((NONE, kind), 0) + 1
    labels = sorted(types) + [NONE]
    matrix = [[counts.get((row, col), 0) for col in labels] for row in labels]
    return {"labels": labels, "matrix": matrix}


def plot_confusion(confusion: dict[str, Any], path: Path, title: str) -> Path:
    """Save the matrix as a PNG heat map with the counts written in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = confusion["labels"]
    matrix = np.asarray(confusion["matrix"], dtype=float)
    size = max(4.0, 0.9 * len(labels) + 2.0)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    try:
        image = ax.imshow(matrix, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels=labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels=labels)
        ax.set_xlabel("predicted type")
        ax.set_ylabel("gold type")
        ax.set_title(title, fontsize=10)
        peak = matrix.max() if matrix.size else 0
        for i in range(len(labels)):
            for j in range(len(labels)):
                if i == j == len(labels) - 1:
                    continue  # (none, none) is not counted
                value = int(matrix[i, j])
                ax.text(
                    j,
                    i,
                    str(value),
                    ha="center",
                    va="center",
                    color="white" if peak and value > peak / 2 else "black",
                    fontsize=9,
                )
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return path
