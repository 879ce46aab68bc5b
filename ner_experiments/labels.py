"""IOB2 label names: checking them and mapping B- tags to their I- form."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ner_experiments.errors import DataError

_TAG = re.compile(r"^(O|[BI]-\S+)$")


def is_valid_tag_name(tag: str) -> bool:
    """True for ``O`` and ``B-X`` / ``I-X`` with a non-empty type (hyphens allowed: ``B-creative-work``)."""
    return bool(_TAG.match(tag))


def entity_type(tag: str) -> str | None:
    """``B-PER`` → ``PER``; ``O`` → None."""
    return None if tag == "O" else tag[2:]


def check_label_names(label_names: Sequence[str], where: str) -> None:
    """Raise :class:`DataError` when a label name is not O / B-X / I-X or appears twice."""
    bad = [name for name in label_names if not is_valid_tag_name(name)]
    if bad:
        raise DataError(
            f"{where}: invalid tag name {bad[0]!r} ({len(bad)} invalid in all): tags must be O, B-<TYPE> or I-<TYPE> (IOB2)"
        )
    if len(set(label_names)) != len(label_names):
        dupes = sorted({n for n in label_names if list(label_names).count(n) > 1})
        raise DataError(f"{where}: label {dupes[0]!r} is listed twice in the label set")


def sorted_label_names(tags: set[str]) -> list[str]:
    """A stable label list for data without a declared one: O first, then by type, B before I."""
    types = sorted({t[2:] for t in tags if t != "O"})
    names = ["O"]
    for kind in types:
        names += [f"B-{kind}", f"I-{kind}"]
    return names


def b_to_i_label_ids(label_names: Sequence[str]) -> list[int]:
    """For each label id, the id of the label a continuation sub-word gets.

    ``B-X`` maps to ``I-X`` (never B- again: a second B- would start a spurious entity);
    every other label maps to itself. If the label set lacks ``I-X``, ``B-X`` keeps its id.
    """
    index = {name: i for i, name in enumerate(label_names)}
    return [
        index.get("I-" + name[2:], i) if name.startswith("B-") else i for i, name in enumerate(label_names)
    ]
