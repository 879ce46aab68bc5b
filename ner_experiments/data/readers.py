"""Readers that turn each data source into the :class:`NerData` contract.

- ``hub``: a Hub data set id, or a local folder laid out like the Hub repo (parquet + README configs);
  both go through ``datasets.load_dataset``, so a local copy exercises the same code path.
- ``files``: local train/validation/test files, 2-column CoNLL or JSON lines, with IOB2 string tags.
- ``sample``: the small data set shipped inside the package (WikiANN schema).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
from datasets import ClassLabel, Dataset, DatasetDict

from ner_experiments.config import DatasetConfig
from ner_experiments.data.contract import CONTRACT_FEATURES, SPLITS, NerData, validate_ner_data
from ner_experiments.data.files import FileRows, scan_conll, scan_jsonl
from ner_experiments.data.problems import Problem, raise_problems
from ner_experiments.errors import DataError
from ner_experiments.labels import check_label_names, sorted_label_names, tag_problem
from ner_experiments.offline import is_network_error, offline_advice

log = logging.getLogger(__name__)

WIKIANN_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_data"
CONLL_SUFFIXES = (".conll", ".txt", ".tsv", ".iob", ".iob2", ".annotated")
JSONL_SUFFIXES = (".jsonl", ".json")


@dataclass
class DataReading:
    """What reading a data set found: the data without the sentences that have problems, the problems
    (each with its file and line), and harmless things worth a note (a BOM, CRLF line ends)."""

    data: NerData
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def load_ner_data(cfg: DatasetConfig, cache_dir: str | None = None) -> NerData:
    """Read the configured data set into the contract, validated and cut to the configured sizes.

    Raises one :class:`DataError` that lists every problem of every file, grouped by kind.
    """
    reading = read_data(cfg, cache_dir)
    raise_problems(reading.data.source, reading.problems)
    validate_ner_data(reading.data)
    return reading.data


def read_data(cfg: DatasetConfig, cache_dir: str | None = None) -> DataReading:
    """Read the configured data set, collecting problems instead of stopping at the first.

    Still raises :class:`DataError` when nothing can be read at all (no folder, no file, no such split).
    """
    if cfg.source == "hub":
        reading = _read_hub(cfg, cache_dir)
    elif cfg.source == "files":
        reading = _read_files(cfg)
    elif cfg.source == "sample":
        reading = _read_sample(cfg)
    else:  # validate_config rejects this earlier; kept for callers that skip it
        raise DataError(f"dataset.source={cfg.source!r} is not valid: use hub, files or sample")
    reading.data.language = reading.data.language or cfg.language
    _limit_sizes(reading.data, cfg.max_train_samples, cfg.max_eval_samples)
    return reading


def _limit_sizes(data: NerData, max_train: int | None, max_eval: int | None) -> None:
    for split, limit in (("train", max_train), ("validation", max_eval), ("test", max_eval)):
        ds = data.splits.get(split)
        if limit is not None and ds is not None and len(ds) > limit:
            data.splits[split] = ds.select(range(limit))


# --- Hub -------------------------------------------------------------------------------------------


def _read_hub(cfg: DatasetConfig, cache_dir: str | None) -> DataReading:
    where = f"{cfg.path}" + (f" (config {cfg.config_name})" if cfg.config_name else "")
    try:
        raw = datasets.load_dataset(cfg.path, cfg.config_name, revision=cfg.revision, cache_dir=cache_dir)
    except Exception as err:  # the library raises many types; turn the common ones into one line
        if is_network_error(err):
            raise DataError(
                f"cannot load data set {where}: the Hub cannot be reached. {offline_advice('dataset')}"
            ) from err
        if (
            isinstance(err, FileNotFoundError)
            or "doesn't exist" in str(err)
            or "not found" in str(err).lower()
        ):
            raise DataError(
                f"data set {where} was not found: check dataset.path (a Hub id or a local folder) and dataset.config_name"
            ) from err
        if isinstance(err, ValueError) and "config" in str(err).lower():
            raise DataError(f"data set {cfg.path}: {str(err).splitlines()[0]}") from err
        raise
    assert isinstance(raw, DatasetDict)
    wanted = {"train": cfg.train_split, "validation": cfg.validation_split, "test": cfg.test_split}
    missing = [name for name in wanted.values() if name not in raw]
    if missing:
        raise DataError(
            f"data set {where} has no split {missing[0]!r} (it has {', '.join(raw)}): set dataset.<train|validation|test>_split"
        )
    for column in (cfg.tokens_column, cfg.tags_column):
        if column not in raw[cfg.train_split].column_names:
            raise DataError(
                f"data set {where} has no column {column!r} (it has {', '.join(raw[cfg.train_split].column_names)}): "
                "set dataset.tokens_column / dataset.tags_column"
            )
    tag_feature = raw[cfg.train_split].features[cfg.tags_column]
    inner = getattr(tag_feature, "feature", None)
    splits: dict[str, Dataset] = {}
    if isinstance(inner, ClassLabel):
        label_names = list(inner.names)
        check_label_names(label_names, where)
        if cfg.label_names and list(cfg.label_names) != label_names:
            log.warning("dataset.label_names is ignored: %s declares its labels as %s", where, label_names)
        for split, name in wanted.items():
            ds = raw[name].select_columns([cfg.tokens_column, cfg.tags_column])
            ds = ds.rename_columns({cfg.tokens_column: "tokens", cfg.tags_column: "tags"})
            splits[split] = ds.cast_column("tags", datasets.Sequence(datasets.Value("int32")))
        return DataReading(NerData(splits=splits, label_names=label_names, source=where))
    # String tags (or ints with a declared list): build the label set from the data.
    rows = {
        split: FileRows(
            f"{where} {name}", list(raw[name][cfg.tokens_column]), list(raw[name][cfg.tags_column])
        )
        for split, name in wanted.items()
    }
    return _from_rows(rows, cfg.label_names, where)


# --- Local files -----------------------------------------------------------------------------------


def _find_split_file(data_dir: Path, stem_or_name: str, split: str) -> Path:
    direct = data_dir / stem_or_name
    if direct.is_file():
        return direct
    candidates = sorted(
        p for p in data_dir.glob(stem_or_name + ".*") if p.suffix in CONLL_SUFFIXES + JSONL_SUFFIXES
    )
    if not candidates:
        raise DataError(
            f"no {split} file in {data_dir}: expected {stem_or_name}.conll / .jsonl (or set dataset.{split}_file)"
        )
    return candidates[0]


def read_conll(path: Path) -> tuple[list[list[str]], list[list[str]]]:
    """2-column CoNLL: ``token<TAB or spaces>tag`` per line, a blank (or whitespace-only) line between sentences.

    ``-DOCSTART-`` lines are skipped. With more than two columns the first is the token and the last the tag.
    Raises one :class:`DataError` listing every line that cannot be read.
    """
    rows = scan_conll(path)
    raise_problems(str(path), rows.problems)
    return rows.tokens, rows.tags


def read_jsonl(
    path: Path, tokens_key: str = "tokens", tags_key: str = "ner_tags"
) -> tuple[list[list[str]], list[list[Any]]]:
    """JSON lines, one sentence a line: ``{"tokens": [...], "ner_tags": [...]}`` (``tags`` also accepted).

    Raises one :class:`DataError` listing every line that cannot be read.
    """
    rows = scan_jsonl(path, tokens_key, tags_key)
    raise_problems(str(path), rows.problems)
    return rows.tokens, rows.tags


def split_files(cfg: DatasetConfig) -> dict[str, tuple[Path, str]]:
    """The file of each split under ``dataset.data_dir``, with its format (conll or jsonl)."""
    data_dir = Path(str(cfg.data_dir))
    if not data_dir.is_dir():
        raise DataError(
            f"dataset.data_dir={data_dir} does not exist: give a folder with train/validation/test files"
        )
    found = {}
    for split, stem in (
        ("train", cfg.train_file),
        ("validation", cfg.validation_file),
        ("test", cfg.test_file),
    ):
        path = _find_split_file(data_dir, stem, split)
        fmt = cfg.file_format
        if fmt == "auto":
            fmt = "jsonl" if path.suffix in JSONL_SUFFIXES else "conll"
        found[split] = (path, fmt)
    return found


def _read_files(cfg: DatasetConfig) -> DataReading:
    rows = {
        split: scan_jsonl(path, cfg.tokens_column, cfg.tags_column) if fmt == "jsonl" else scan_conll(path)
        for split, (path, fmt) in split_files(cfg).items()
    }
    return _from_rows(rows, cfg.label_names, str(cfg.data_dir))


def _from_rows(rows: dict[str, FileRows], declared: Iterable[str] | None, where: str) -> DataReading:
    """Convert string (or declared-list int) tags to ids, checking every tag on the way.

    Words with a problem are left out of the data; the problems are returned with it.
    """
    declared_names = list(declared) if declared else None
    if declared_names:
        check_label_names(declared_names, f"{where}: dataset.label_names")
    problems = [p for split_rows in rows.values() for p in split_rows.problems]
    seen: set[str] = set()
    for split_rows in rows.values():
        problems += _check_tags(split_rows, declared_names, seen)
    label_names = declared_names or sorted_label_names(seen)
    index = {name: i for i, name in enumerate(label_names)}
    splits = {}
    for split, split_rows in rows.items():
        tokens, ids = [], []
        for i, (words, tags) in enumerate(zip(split_rows.tokens, split_rows.tags, strict=True)):
            keep = [j for j in range(len(words)) if (i, j) not in split_rows.bad]
            if keep:  # sentences without words are left out
                tokens.append([words[j] for j in keep])
                ids.append([tags[j] if isinstance(tags[j], int) else index[tags[j]] for j in keep])
        splits[split] = Dataset.from_dict({"tokens": tokens, "tags": ids}, features=CONTRACT_FEATURES)
    notes = [n for split_rows in rows.values() for n in split_rows.notes]
    return DataReading(NerData(splits=splits, label_names=label_names, source=where), problems, notes)


def _check_tags(rows: FileRows, declared: list[str] | None, seen: set[str]) -> list[Problem]:
    """Problems of the tags of one file; marks those words bad and adds the good tag names to ``seen``."""
    problems: list[Problem] = []
    numbers_reported = False
    for i, (tokens, tags) in enumerate(zip(rows.tokens, rows.tags, strict=True)):
        for j, tag in enumerate(tags):
            kind, text = None, f"{tag!r} (word {tokens[j]!r})"
            if isinstance(tag, int):
                if declared is None and not numbers_reported:
                    kind, numbers_reported = "numeric_tags", True
                    text = f"tags are numbers, e.g. {tag} (word {tokens[j]!r}), and no label names are known"
                elif declared is None:
                    rows.bad.add((i, j))
                elif not 0 <= tag < len(declared):
                    kind = "tag_id_out_of_range"
                    text = f"tag id {tag} (word {tokens[j]!r}): the label set has {len(declared)} labels"
            else:
                tag = str(tag)
                kind = tag_problem(tag)
                if kind is None and declared is not None and tag not in declared:
                    kind = "unknown_label"
                elif kind is None:
                    seen.add(tag)
            if kind is not None:
                problems.append(
                    Problem(kind, rows.where(i, j), text, None if kind == "numeric_tags" else str(tag))
                )
                rows.bad.add((i, j))
    return problems


# --- Shipped sample --------------------------------------------------------------------------------


def _read_sample(cfg: DatasetConfig) -> DataReading:
    language = cfg.config_name or cfg.language or "bn"
    folder = SAMPLE_DIR / language
    if not folder.is_dir():
        options = sorted(p.parent.name for p in SAMPLE_DIR.glob("*/train.jsonl"))  # not tiny_tokenizer/
        raise DataError(
            f"the sample data set has no language {language!r}: use dataset.language={' or '.join(options)}"
        )
    rows = {split: scan_jsonl(folder / f"{split}.jsonl") for split in SPLITS}
    reading = _from_rows(rows, WIKIANN_LABELS, f"sample data ({language})")
    reading.data.language = language
    return reading
