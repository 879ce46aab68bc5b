"""The data check that training runs at start and ``ner-data check`` prints: one verdict for both.
Problems stop training; warnings say what would otherwise go wrong quietly."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from ner_experiments.data.contract import NerData, Problem, columns, contract_problems, format_problems
from ner_experiments.errors import DataError

FEW_EXAMPLES = 10  # an entity type with fewer training examples than this gets a warning
EVAL_SPLITS = ("validation", "test")

log = logging.getLogger(__name__)


@dataclass
class SplitFigures:
    """One split: each sentence's length in words, entities per type, and I-X tags that start an entity."""

    lengths: list[int] = field(default_factory=list)
    entities: Counter[str] = field(default_factory=Counter)
    iob1_starts: int = 0


@dataclass
class DataCheckReport:
    """What the check found: ``problems`` stop training, ``warnings`` do not; figures per split."""

    source: str
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
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
    train = report.figures.get("train", SplitFigures())
    if "train" in report.figures and not train.entities:
        text = f"{len(train.lengths)} sentences, every tag O"
        report.problems.append(Problem("no_entities", f"{data.source} train", text))
    unseen = unseen_labels_warning(data)
    report.warnings += [unseen] if unseen else []
    few = ", ".join(f"{kind} {n}" for kind, n in sorted(train.entities.items()) if n < FEW_EXAMPLES)
    if few:
        report.warnings.append(
            f"entity types with fewer than {FEW_EXAMPLES} training examples: {few}: expect low scores"
        )
    iob1 = ", ".join(f"{split} {f.iob1_starts}" for split, f in report.figures.items() if f.iob1_starts)
    if iob1:
        report.warnings.append(
            f"I- tags that start an entity, with no B- before them ({iob1}): read as entity starts (IOB1 style); "
            "ner-data fix rewrites them to B-"
        )
    report.warnings += duplicate_warnings(data)
    return report


def labels_seen_in_training(data: NerData) -> list[str]:
    """The label names that occur in the train split, in label-set order (for the model card)."""
    ids = {t for tags in columns(data.splits["train"])["tags"] for t in tags}
    return [name for i, name in enumerate(data.label_names) if i in ids]


def unseen_labels_warning(data: NerData) -> str | None:
    """A warning naming the labels of validation/test that training never shows, with their counts."""
    seen = set(labels_seen_in_training(data))
    counts: dict[str, Counter[str]] = {}
    for split in (s for s in EVAL_SPLITS if s in data.splits):
        for tag in (t for tags in data.tag_names(split) for t in tags if t not in seen):
            counts.setdefault(tag, Counter())[split] += 1
    if not counts:
        return None
    named = "; ".join(
        f"{tag} ({', '.join(f'{split} {n}' for split, n in counts[tag].items())})"
        for tag in sorted(counts, key=data.label_names.index)
    )
    return (
        f"labels in validation/test that the train split never has: {named}: "
        "the model cannot learn them, so their words count as errors"
    )


def split_figures(data: NerData, split: str) -> SplitFigures:
    """Sentence lengths and entity counts of one split (entities read as seqeval does: I-X may start one)."""
    figures = SplitFigures()
    for tags in data.tag_names(split):
        figures.lengths.append(len(tags))
        previous = "O"
        for tag in tags:
            if tag.startswith("B-") or (tag.startswith("I-") and previous[2:] != tag[2:]):
                figures.entities[tag[2:]] += 1
                figures.iob1_starts += tag.startswith("I-")
            previous = tag
    return figures


def duplicate_warnings(data: NerData) -> list[str]:
    """Sentences of validation/test that also appear in an earlier split, word for word."""
    warnings = []
    earlier: dict[tuple[str, ...], str] = {}
    for split in (s for s in ("train", *EVAL_SPLITS) if s in data.splits):
        sentences = [tuple(tokens) for tokens in columns(data.splits[split])["tokens"]]
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
