"""Data problems, each with where it is (``file:line``) and the text at fault, reported all at once.

A reader collects every problem of every file before it gives up, so one run shows the whole size of
the job; :func:`format_problems` groups them by kind, with the fix for each kind said once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ner_experiments.errors import DataError

SHOWN_PER_KIND = 20  # lines listed per kind before "... and N more"
FIX_COMMAND = "ner-data fix"


@dataclass(frozen=True)
class ProblemKind:
    """One kind of data problem: a short name, and what the user does about it."""

    name: str
    fix: str
    fixable: bool = False  # `ner-data fix` repairs it without guessing (perhaps told how by an option)


KINDS: dict[str, ProblemKind] = {
    "not_utf8": ProblemKind("line not UTF-8", "convert the file to UTF-8, e.g. iconv -f <encoding> -t UTF-8"),
    "bad_json": ProblemKind("line not valid JSON", "write one JSON object per line"),
    "not_a_sentence": ProblemKind(
        "line not a sentence object",
        'write one {"tokens": [...], "ner_tags": [...]} object per line '
        "(other key names: dataset.tokens_column / dataset.tags_column)",
    ),
    "count_mismatch": ProblemKind("token and tag counts differ", "every token needs one tag"),
    "no_tag": ProblemKind("line without a tag", "write 'token<TAB>tag'; a blank line ends a sentence"),
    "empty_token": ProblemKind(
        "empty token",
        f"a tag with no word before it: delete the line or put the word back ({FIX_COMMAND} drops the line)",
        fixable=True,
    ),
    "bare_tag": ProblemKind(
        "tag without B-/I-",
        "tags must be O, B-<TYPE> or I-<TYPE> (IOB2): "
        f"{FIX_COMMAND} --bare-tags=IO (a run of the same tag is one entity) "
        "or --bare-tags=B (every tagged word is an entity of its own) adds the prefixes",
        fixable=True,
    ),
    "other_scheme": ProblemKind(
        "BILOU/IOBES tag",
        f"tags must be O, B-<TYPE> or I-<TYPE> (IOB2): U-/S- become B-, L-/E- become I- ({FIX_COMMAND} does it)",
        fixable=True,
    ),
    "invalid_tag": ProblemKind("invalid tag name", "tags must be O, B-<TYPE> or I-<TYPE> (IOB2)"),
    "numeric_tags": ProblemKind(
        "numeric tags without label names", "set dataset.label_names=[O,B-...,I-...]"
    ),
    "unknown_label": ProblemKind(
        "tag not in dataset.label_names", "add it to dataset.label_names or fix the data"
    ),
    "tag_id_out_of_range": ProblemKind(
        "tag id outside the label set", "fix the data or declare every label in dataset.label_names"
    ),
    "empty_split": ProblemKind("empty split", "every split needs at least one sentence"),
    "no_entities": ProblemKind(
        "no entities to learn", "the train split has only O tags: give training data with tagged entities"
    ),
}


@dataclass(frozen=True)
class Problem:
    """One problem: its kind (a key of :data:`KINDS`), where (``path:line``) and the text at fault."""

    kind: str
    where: str
    text: str
    value: str | None = None  # the offending tag, when there is one: summarised per kind

    @property
    def fixable(self) -> bool:
        return KINDS[self.kind].fixable


def summary_line(source: str, problems: Sequence[Problem]) -> str:
    """First line of a report: what and how many, e.g. ``data: 7 problems (empty token 3, ...)``."""
    counts = Counter(p.kind for p in problems)
    parts = ", ".join(f"{KINDS[k].name} {n}" for k, n in _in_kind_order(counts))
    noun = "problem" if len(problems) == 1 else "problems"
    return f"{source}: {len(problems)} data {noun} ({parts}), listed by kind with the fix:"


def format_problems(source: str, problems: Sequence[Problem], limit: int = SHOWN_PER_KIND) -> str:
    """A short report: the summary line, then per kind its fix and up to ``limit`` places."""
    lines = [summary_line(source, problems)]
    by_kind: dict[str, list[Problem]] = {}
    for problem in problems:
        by_kind.setdefault(problem.kind, []).append(problem)
    for kind, _ in _in_kind_order(Counter({k: len(v) for k, v in by_kind.items()})):
        found = by_kind[kind]
        values = Counter(p.value for p in found if p.value is not None)
        shown_values = ", ".join(f"{v!r} {n}" for v, n in values.most_common(8))
        lines.append(f"  {KINDS[kind].name} ({len(found)})" + (f": {shown_values}" if values else ""))
        lines.append(f"    fix: {KINDS[kind].fix}")
        lines += [f"    {p.where}: {p.text}" for p in found[:limit]]
        if len(found) > limit:
            lines.append(f"    ... and {len(found) - limit} more")
    return "\n".join(lines)


def raise_problems(source: str, problems: Sequence[Problem]) -> None:
    """Raise one :class:`DataError` reporting every problem, if there are any."""
    if problems:
        raise DataError(format_problems(source, problems))


def shown(text: str, width: int = 60) -> str:
    """The offending text as Python writes it (tabs and invisible characters visible), cut to ``width``."""
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def _in_kind_order(counts: Counter[str]) -> list[tuple[str, int]]:
    order = list(KINDS)
    return sorted(counts.items(), key=lambda item: order.index(item[0]))
