"""The data check that training runs at start and ``ner-data check`` prints: one verdict for both.

Problems stop training (an empty split, no entities to learn, anything a reader could not read);
warnings do not, but say what will go wrong quietly (labels the model never sees in training,
test sentences that are also training sentences, IOB1-style tags).
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from ner_experiments.data.contract import NerData, columns, contract_problems
from ner_experiments.data.problems import Problem, format_problems
from ner_experiments.data.readers import DataReading
from ner_experiments.errors import DataError

FEW_EXAMPLES = 10  # an entity type with fewer training examples than this gets a warning
EVAL_SPLITS = ("validation", "test")

log = logging.getLogger(__name__)


@dataclass
class SplitFigures:
    """Counts of one split: sentences, words, entities per type, and each sentence's length in words."""

    sentences: int = 0
    words: int = 0
    entities: Counter[str] = field(default_factory=Counter)
    lengths: list[int] = field(default_factory=list)
    iob1_starts: int = 0  # I-X tags that start an entity (no B-X or I-X before them)
    labels: Counter[str] = field(default_factory=Counter)  # tag name -> how many words carry it


@dataclass
class DataCheckReport:
    """What the check found. ``problems`` stop training; ``warnings`` and ``notes`` do not."""

    source: str
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: dict[str, SplitFigures] = field(default_factory=dict)

    @property
    def can_train(self) -> bool:
        return not self.problems

    def ensure_trainable(self, logger: logging.Logger | None = None) -> None:
        """Log every warning, then raise one :class:`DataError` listing all problems, if there are any."""
        for warning in self.warnings:
            (logger or log).warning("data: %s", warning)
        if self.problems:
            raise DataError(format_problems(self.source, self.problems))


def check_data(data: NerData) -> DataCheckReport:
    """Check loaded data before training: what stops it (problems) and what it should know (warnings)."""
    report = DataCheckReport(data.source, problems=contract_problems(data))
    report.figures = {split: split_figures(data, split) for split in data.splits if len(data.splits[split])}
    train = report.figures.get("train")
    if train is not None and not train.entities:
        text = f"{train.sentences} sentences, every tag O"
        report.problems.append(Problem("no_entities", f"{data.source} train", text))
    unseen = unseen_labels_warning(data)
    report.warnings += [unseen] if unseen else []
    report.warnings += _few_examples(train)
    report.warnings += _iob1_warnings(report.figures)
    report.warnings += duplicate_warnings(data)
    used = set().union(*(f.labels for f in report.figures.values())) if report.figures else set()
    # An I-X next to a used B-X is only the other half of the pair the label set always holds
    unused = [n for n in data.label_names if n not in used and not (n[:2] == "I-" and f"B-{n[2:]}" in used)]
    if unused:
        report.notes.append(f"labels in the label set that no split uses: {', '.join(unused)}")
    return report


def check_reading(reading: DataReading) -> DataCheckReport:
    """:func:`check_data` on what a lenient read kept, with the reading's own problems and notes first."""
    report = check_data(reading.data)
    report.problems = [*reading.problems, *report.problems]
    report.notes = [*reading.notes, *report.notes]
    if reading.problems:
        left_out = "; the figures leave out the words and lines with problems"
        report.notes.append(f"{len(reading.problems)} problems found while reading{left_out}")
    return report


def labels_seen_in_training(data: NerData) -> list[str]:
    """The label names that occur in the train split, in label-set order (for the model card)."""
    ids = {t for tags in columns(data.splits["train"])["tags"] for t in tags}
    return [name for i, name in enumerate(data.label_names) if i in ids]


def unseen_labels_warning(data: NerData) -> str | None:
    """A warning naming the labels of validation/test that training never shows, with their counts."""
    seen = set(labels_seen_in_training(data))
    counts: dict[str, Counter[str]] = {}
    for split in EVAL_SPLITS:
        if split in data.splits:
            for tags in data.tag_names(split):
                for tag in tags:
                    if tag not in seen:
                        counts.setdefault(tag, Counter())[split] += 1
    if not counts:
        return None
    named = "; ".join(
        f"{tag} ({', '.join(f'{split} {n}' for split, n in by_split.items())})"
        for tag, by_split in sorted(counts.items(), key=lambda item: data.label_names.index(item[0]))
    )
    return (
        f"labels in validation/test that the train split never has: {named}: "
        "the model cannot learn them, so their words count as errors"
    )


def split_figures(data: NerData, split: str) -> SplitFigures:
    """Sentence, word and entity counts of one split (entities read as seqeval does: I-X may start one)."""
    figures = SplitFigures()
    for tags in data.tag_names(split):
        figures.sentences += 1
        figures.words += len(tags)
        figures.lengths.append(len(tags))
        figures.labels.update(tags)
        previous = "O"
        for tag in tags:
            if tag.startswith("B-") or (tag.startswith("I-") and previous[2:] != tag[2:]):
                figures.entities[tag[2:]] += 1
                figures.iob1_starts += tag.startswith("I-")
            previous = tag
    return figures


def length_summary(lengths: Sequence[int]) -> tuple[int, int, int, int]:
    """Minimum, median, 95th percentile and maximum of sentence lengths (0s when there are none)."""
    if not lengths:
        return 0, 0, 0, 0
    ordered = sorted(lengths)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return ordered[0], int(statistics.median(ordered)), p95, ordered[-1]


def duplicate_warnings(data: NerData) -> list[str]:
    """Sentences of validation/test that also appear in an earlier split, word for word."""
    warnings = []
    earlier: dict[tuple[str, ...], str] = {}
    for split in ("train", *EVAL_SPLITS):
        if split not in data.splits:
            continue
        sentences = [tuple(tokens) for tokens in columns(data.splits[split])["tokens"]]
        if split != "train":
            shared = [i for i, s in enumerate(sentences) if s in earlier]
            if shared:
                in_splits = ", ".join(sorted({earlier[sentences[i]] for i in shared}))
                example = " ".join(sentences[shared[0]])[:60]
                warnings.append(
                    f"{len(shared):,} of {len(sentences):,} {split} sentences ({len(shared) / len(sentences):.1%}) "
                    f"also appear in {in_splits}, word for word (e.g. {split} sentence {shared[0] + 1}: "
                    f"{example!r}): scores on them measure memory, not generalisation"
                )
        for sentence in sentences:
            earlier.setdefault(sentence, split)
    return warnings


def _few_examples(train: SplitFigures | None) -> list[str]:
    if train is None:
        return []
    few = [f"{kind} {n}" for kind, n in sorted(train.entities.items()) if n < FEW_EXAMPLES]
    if not few:
        return []
    return [
        f"entity types with fewer than {FEW_EXAMPLES} training examples: {', '.join(few)}: expect low scores"
    ]


def _iob1_warnings(figures: dict[str, SplitFigures]) -> list[str]:
    counts = {split: f.iob1_starts for split, f in figures.items() if f.iob1_starts}
    if not counts:
        return []
    where = ", ".join(f"{split} {n}" for split, n in counts.items())
    return [
        f"I- tags that start an entity, with no B- before them ({where}): read as entity starts (IOB1 style); "
        "ner-data fix rewrites them to B-"
    ]
