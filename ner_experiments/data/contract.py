"""The one data contract every reader converts into, and the data problems found against it: each
with where it is (``file:line``) and the text at fault, reported all at once, grouped by kind."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from datasets import Dataset

from ner_experiments.errors import DataError
from ner_experiments.labels import check_label_names

SPLITS = ("train", "validation", "test")
SHOWN_PER_KIND = 20  # places listed per kind before "... and N more"
FIX_COMMAND = "ner-data fix"
IOB2 = "tags must be O, B-<TYPE> or I-<TYPE> (IOB2)"

# kind -> (what the report calls it, what the user does about it); the report lists kinds in this order
KINDS: dict[str, tuple[str, str]] = {
    "not_utf8": ("line not UTF-8", "convert the file to UTF-8, e.g. iconv -f <encoding> -t UTF-8"),
    "bad_json": ("line not valid JSON", "write one JSON object per line"),
    "not_a_sentence": (
        "line not a sentence object",
        'write one {"tokens": [...], "ner_tags": [...]} object per line '
        "(other key names: dataset.tokens_column / dataset.tags_column)",
    ),
    "count_mismatch": ("token and tag counts differ", "every token needs one tag"),
    "no_tag": ("line without a tag", "write 'token<TAB>tag'; a blank line ends a sentence"),
    "empty_token": (
        "empty token",
        f"a tag with no word before it: delete the line or put the word back ({FIX_COMMAND} drops the line)",
    ),
    "bare_tag": (
        "tag without B-/I-",
        f"{IOB2}: {FIX_COMMAND} --bare-tags=IO (a run of the same tag is one entity) "
        "or --bare-tags=B (every tagged word is an entity of its own) adds the prefixes",
    ),
    "other_scheme": (
        "BILOU/IOBES tag",
        f"{IOB2}: U-/S- become B-, L-/E- become I- ({FIX_COMMAND} does it)",
    ),
    "invalid_tag": ("invalid tag name", IOB2),
    "numeric_tags": ("numeric tags without label names", "set dataset.label_names=[O,B-...,I-...]"),
    "unknown_label": ("tag not in dataset.label_names", "add it to dataset.label_names or fix the data"),
    "tag_id_out_of_range": (
        "tag id outside the label set",
        "fix the data or declare every label in dataset.label_names",
    ),
    "empty_split": ("empty split", "every split needs at least one sentence"),
    "no_entities": (
        "no entities to learn",
        "the train split has only O tags: give training data with tagged entities",
    ),
}
FIXABLE = {"empty_token", "bare_tag", "other_scheme"}  # ner-data fix repairs them without guessing


@dataclass(frozen=True)
class Problem:
    """One problem: its kind (a key of :data:`KINDS`), where (``path:line``) and the text at fault."""

    kind: str
    where: str
    text: str
    value: str | None = None  # the offending tag, when there is one: counted per kind


@dataclass
class NerData:
    """Splits with columns ``tokens`` (list of words) and ``tags`` (list of label ids), and the label names."""

    splits: dict[str, Dataset]
    label_names: list[str]
    language: str | None = None
    source: str = ""  # where it came from, for messages and the model card

    def tag_names(self, split: str) -> list[list[str]]:
        """Gold tags of a split as label names, sentence by sentence."""
        return [[self.label_names[t] for t in tags] for tags in columns(self.splits[split])["tags"]]


def columns(ds: Dataset) -> dict[str, list[list]]:
    """``tokens`` and ``tags`` as Python lists in one Arrow conversion (``ds[name]`` goes row by row)."""
    table = ds.select_columns(["tokens", "tags"]).with_format("arrow")[:]
    return {name: table.column(name).to_pylist() for name in ("tokens", "tags")}


def contract_problems(data: NerData) -> list[Problem]:
    """What would otherwise fail late or silently: empty splits, length mismatches, tag ids out of range."""
    n_labels = len(data.label_names)
    problems: list[Problem] = []
    for split, ds in data.splits.items():
        where = f"{data.source} {split}"
        if len(ds) == 0:
            problems.append(Problem("empty_split", where, f"the {split} split has no sentences"))
        rows = columns(ds)
        for i, (tokens, tags) in enumerate(zip(rows["tokens"], rows["tags"], strict=True), start=1):
            bad = [t for t in tags if t is None or not 0 <= t < n_labels]
            if len(tokens) != len(tags):
                text = f"{len(tokens)} tokens but {len(tags)} tags"
                problems.append(Problem("count_mismatch", f"{where} sentence {i}", text))
            elif bad:
                text = f"tag id {bad[0]}: the label set has {n_labels} labels"
                problems.append(Problem("tag_id_out_of_range", f"{where} sentence {i}", text, str(bad[0])))
    return problems


def validate_ner_data(data: NerData) -> None:
    """Raise one :class:`DataError` listing every contract problem (see :func:`contract_problems`)."""
    check_label_names(data.label_names, data.source or "label set")
    raise_problems(data.source, contract_problems(data))


def format_problems(source: str, problems: Sequence[Problem], limit: int = SHOWN_PER_KIND) -> str:
    """A summary line (what and how many), then per kind its fix and up to ``limit`` places."""
    by_kind = {kind: [p for p in problems if p.kind == kind] for kind in KINDS}
    by_kind = {kind: found for kind, found in by_kind.items() if found}
    counts = ", ".join(f"{KINDS[kind][0]} {len(found)}" for kind, found in by_kind.items())
    noun = "problem" if len(problems) == 1 else "problems"
    lines = [f"{source}: {len(problems)} data {noun} ({counts}), listed by kind with the fix:"]
    for kind, found in by_kind.items():
        values = Counter(p.value for p in found if p.value is not None)
        shown_values = ", ".join(f"{value!r} {n}" for value, n in values.most_common(8))
        lines.append(f"  {KINDS[kind][0]} ({len(found)})" + (f": {shown_values}" if values else ""))
        lines.append(f"    fix: {KINDS[kind][1]}")
        lines += [f"    {p.where}: {p.text}" for p in found[:limit]]
        if len(found) > limit:
            lines.append(f"    ... and {len(found) - limit} more")
    return "\n".join(lines)


def raise_problems(source: str, problems: Sequence[Problem]) -> None:
    """Raise one :class:`DataError` reporting every problem, if there are any."""
    if problems:
        raise DataError(format_problems(source, problems))
