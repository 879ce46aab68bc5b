"""IOB2 label names: checking them and mapping B- tags to their I- form."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ner_experiments.errors import DataError

_TAG = re.compile(r"^(O|[BI]-\S+)$")
_OTHER_SCHEME = re.compile(r"^[LUES]-\S+$")
_BARE = re.compile(r"^[^\W\d_][\w.-]*$")  # a type name: starts with a letter, no spaces
_PREFIX_LIKE = re.compile(r"^[A-Za-z][-_]")  # B_PER, b-PER, X-PER: a broken prefix, not a bare type


def is_valid_tag_name(tag: str) -> bool:
    """True for ``O`` and ``B-X`` / ``I-X`` with a non-empty type (hyphens allowed: ``B-creative-work``)."""
    return bool(_TAG.match(tag))


def tag_problem(tag: str) -> str | None:
    """None for a valid IOB2 tag, else the kind of problem (a key of ``data.problems.KINDS``).

    ``bare_tag``: a type without a prefix (``TIM``, ``PERSON``); ``other_scheme``: a BILOU/IOBES tag
    (``U-PER``, ``E-LOC``); ``invalid_tag``: anything else (``B_PER``, ``b-PER``, ``B-``, ``o``).
    """
    if is_valid_tag_name(tag):
        return None
    if _OTHER_SCHEME.match(tag):
        return "other_scheme"
    if _BARE.match(tag) and not _PREFIX_LIKE.match(tag) and tag.upper() not in ("O", "B", "I"):
        return "bare_tag"
    return "invalid_tag"


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
