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
    """None for a valid IOB2 tag, else ``bare_tag`` (``TIM``), ``other_scheme`` (BILOU/IOBES: ``U-PER``)
    or ``invalid_tag`` (``B_PER``, ``b-PER``, ``B-``, ``o``): a key of ``data.contract.KINDS``."""
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
    twice = [name for i, name in enumerate(label_names) if name in label_names[:i]]
    if twice:
        raise DataError(f"{where}: label {twice[0]!r} is listed twice in the label set")


def sorted_label_names(tags: set[str]) -> list[str]:
    """A stable label list for data without a declared one: O first, then by type, B before I."""
    types = sorted({t[2:] for t in tags if t != "O"})
    return ["O", *[f"{prefix}-{kind}" for kind in types for prefix in "BI"]]


def b_to_i_label_ids(label_names: Sequence[str]) -> list[int]:
    """For each label id, the id a continuation sub-word gets: ``B-X`` maps to ``I-X`` (a second B- would
    start a spurious entity), or keeps its id when the set lacks ``I-X``; other labels map to themselves."""
    index = {name: i for i, name in enumerate(label_names)}
    return [index.get(f"I-{n[2:]}", i) if n.startswith("B-") else i for i, n in enumerate(label_names)]
