"""The one data contract every reader converts into, and the checks it must pass before training."""

from __future__ import annotations

from dataclasses import dataclass, field

from datasets import Dataset

from ner_experiments.errors import DataError
from ner_experiments.labels import check_label_names

SPLITS = ("train", "validation", "test")


@dataclass
class NerData:
    """Splits with columns ``tokens`` (list of words) and ``tags`` (list of label ids), and the label names."""

    splits: dict[str, Dataset]
    label_names: list[str]
    language: str | None = None
    source: str = ""  # where it came from, for messages and the model card
    notes: list[str] = field(default_factory=list)

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.label_names)}

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.label_names))

    def tag_names(self, split: str) -> list[list[str]]:
        """Gold tags of a split as label names, sentence by sentence."""
        return [[self.label_names[t] for t in tags] for tags in self.splits[split]["tags"]]


def validate_ner_data(data: NerData) -> None:
    """Check what would otherwise fail late or silently: empty splits, length mismatches, unknown tags.

    Raises :class:`DataError` with the split, the sentence index and the problem, plus how many other
    sentences have problems, so one run reports the size of the problem.
    """
    check_label_names(data.label_names, data.source or "label set")
    n_labels = len(data.label_names)
    for split, ds in data.splits.items():
        if len(ds) == 0:
            raise DataError(f"{data.source}: the {split} split is empty: it needs at least one sentence")
        problems: list[str] = []
        for i, (tokens, tags) in enumerate(zip(ds["tokens"], ds["tags"], strict=True)):
            if len(tokens) != len(tags):
                problems.append(f"sentence {i} has {len(tokens)} tokens but {len(tags)} tags")
            elif any(t is None or t < 0 or t >= n_labels for t in tags):
                bad = next(t for t in tags if t is None or t < 0 or t >= n_labels)
                problems.append(f"sentence {i} has tag id {bad}, outside the label set of {n_labels} labels")
        if problems:
            more = f" (and {len(problems) - 1} more sentences)" if len(problems) > 1 else ""
            raise DataError(f"{data.source}: {split} split: {problems[0]}{more}")
