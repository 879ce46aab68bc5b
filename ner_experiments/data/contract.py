"""The one data contract every reader converts into, and the checks it must pass before training."""

from __future__ import annotations

from dataclasses import dataclass

import datasets
from datasets import Dataset

from ner_experiments.data.problems import Problem, raise_problems
from ner_experiments.labels import check_label_names

SPLITS = ("train", "validation", "test")
CONTRACT_FEATURES = datasets.Features(
    {
        "tokens": datasets.Sequence(datasets.Value("string")),
        "tags": datasets.Sequence(datasets.Value("int32")),
    }
)


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
            continue
        rows = columns(ds)
        for i, (tokens, tags) in enumerate(zip(rows["tokens"], rows["tags"], strict=True)):
            if len(tokens) != len(tags):
                text = f"{len(tokens)} tokens but {len(tags)} tags"
                problems.append(Problem("count_mismatch", f"{where} sentence {i + 1}", text))
            elif any(t is None or t < 0 or t >= n_labels for t in tags):
                bad = next(t for t in tags if t is None or t < 0 or t >= n_labels)
                text = f"tag id {bad}: the label set has {n_labels} labels"
                problems.append(Problem("tag_id_out_of_range", f"{where} sentence {i + 1}", text, str(bad)))
    return problems


def validate_ner_data(data: NerData) -> None:
    """Raise one :class:`DataError` listing every contract problem (see :func:`contract_problems`)."""
    check_label_names(data.label_names, data.source or "label set")
    raise_problems(data.source, contract_problems(data))
