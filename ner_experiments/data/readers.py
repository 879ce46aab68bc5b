"""Readers that turn each data source into the :class:`NerData` contract.

- ``hub``: a Hub data set id, or a local folder laid out like the Hub repo (parquet + README configs);
  both go through ``datasets.load_dataset``, so a local copy exercises the same code path.
- ``files``: local train/validation/test files, 2-column CoNLL or JSON lines, with IOB2 string tags.
- ``sample``: the small data set shipped inside the package (WikiANN schema).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import datasets
from datasets import ClassLabel, Dataset, DatasetDict

from ner_experiments.config import DatasetConfig
from ner_experiments.data.contract import SPLITS, NerData, validate_ner_data
from ner_experiments.errors import DataError
from ner_experiments.labels import check_label_names, is_valid_tag_name, sorted_label_names
from ner_experiments.offline import is_network_error, offline_advice

log = logging.getLogger(__name__)

WIKIANN_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_data"
CONLL_SUFFIXES = (".conll", ".txt", ".tsv", ".iob", ".iob2", ".annotated")
JSONL_SUFFIXES = (".jsonl", ".json")


def load_ner_data(cfg: DatasetConfig, cache_dir: str | None = None) -> NerData:
    """Read the configured data set into the contract, validated and cut to the configured sizes."""
    if cfg.source == "hub":
        data = _read_hub(cfg, cache_dir)
    elif cfg.source == "files":
        data = _read_files(cfg)
    elif cfg.source == "sample":
        data = _read_sample(cfg)
    else:  # validate_config rejects this earlier; kept for callers that skip it
        raise DataError(f"dataset.source={cfg.source!r} is not valid: use hub, files or sample")
    data.language = data.language or cfg.language
    _limit_sizes(data, cfg.max_train_samples, cfg.max_eval_samples)
    validate_ner_data(data)
    return data


def _limit_sizes(data: NerData, max_train: int | None, max_eval: int | None) -> None:
    for split, limit in (("train", max_train), ("validation", max_eval), ("test", max_eval)):
        ds = data.splits.get(split)
        if limit is not None and ds is not None and len(ds) > limit:
            data.splits[split] = ds.select(range(limit))


# --- Hub -------------------------------------------------------------------------------------------


def _read_hub(cfg: DatasetConfig, cache_dir: str | None) -> NerData:
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
        return NerData(splits=splits, label_names=label_names, source=where)
    # String tags (or ints with a declared list): build the label set from the data.
    rows = {
        split: (raw[name][cfg.tokens_column], raw[name][cfg.tags_column]) for split, name in wanted.items()
    }
    return _from_rows(
        rows, cfg.label_names, where, {split: f"{where} {name}" for split, name in wanted.items()}
    )


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


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: the file is not UTF-8 text: convert it, e.g. iconv -t UTF-8"
        ) from err


def read_conll(path: Path) -> tuple[list[list[str]], list[list[str]]]:
    """2-column CoNLL: ``token<TAB or spaces>tag`` per line, a blank (or whitespace-only) line between sentences.

    ``-DOCSTART-`` lines are skipped. With more than two columns the first is the token and the last the tag.
    """
    sentences: list[list[str]] = []
    tags: list[list[str]] = []
    cur_tokens: list[str] = []
    cur_tags: list[str] = []
    for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            if cur_tokens:
                sentences.append(cur_tokens)
                tags.append(cur_tags)
            cur_tokens, cur_tags = [], []
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        parts = [p for p in parts if p != ""]
        if parts and parts[0] == "-DOCSTART-":
            continue
        if len(parts) < 2:
            raise DataError(
                f"{path}:{lineno}: malformed line {line.strip()[:60]!r}: expected 'token<TAB>tag' (a blank line ends a sentence)"
            )
        cur_tokens.append(parts[0].strip())
        cur_tags.append(parts[-1].strip())
    if cur_tokens:
        sentences.append(cur_tokens)
        tags.append(cur_tags)
    return sentences, tags


def read_jsonl(
    path: Path, tokens_key: str = "tokens", tags_key: str = "ner_tags"
) -> tuple[list[list[str]], list[list[Any]]]:
    """JSON lines, one sentence a line: ``{"tokens": [...], "ner_tags": [...]}`` (``tags`` also accepted)."""
    sentences: list[list[str]] = []
    tags: list[list[Any]] = []
    for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{lineno}: not valid JSON ({err.msg}): one JSON object per line") from err
        fields = row if isinstance(row, dict) else {}  # a line may hold any JSON value: 5, null, a list
        key = tags_key if tags_key in fields else "tags" if "tags" in fields else None
        if key is None or not isinstance(fields.get(tokens_key), list) or not isinstance(fields[key], list):
            raise DataError(f"{path}:{lineno}: expected an object with {tokens_key!r} and {tags_key!r} lists")
        if len(row[tokens_key]) != len(row[key]):
            raise DataError(
                f"{path}:{lineno}: {len(row[tokens_key])} tokens but {len(row[key])} tags: every token needs one tag"
            )
        sentences.append([str(t) for t in row[tokens_key]])
        tags.append(list(row[key]))
    return sentences, tags


def _read_files(cfg: DatasetConfig) -> NerData:
    data_dir = Path(str(cfg.data_dir))
    if not data_dir.is_dir():
        raise DataError(
            f"dataset.data_dir={data_dir} does not exist: give a folder with train/validation/test files"
        )
    rows: dict[str, tuple[list[list[str]], list[list[Any]]]] = {}
    origins: dict[str, str] = {}
    for split, stem in (
        ("train", cfg.train_file),
        ("validation", cfg.validation_file),
        ("test", cfg.test_file),
    ):
        path = _find_split_file(data_dir, stem, split)
        fmt = cfg.file_format
        if fmt == "auto":
            fmt = "jsonl" if path.suffix in JSONL_SUFFIXES else "conll"
        rows[split] = (
            read_jsonl(path, cfg.tokens_column, cfg.tags_column) if fmt == "jsonl" else read_conll(path)
        )
        origins[split] = str(path)
    return _from_rows(rows, cfg.label_names, str(data_dir), origins)


def _from_rows(
    rows: dict[str, tuple[list[list[str]], list[list[Any]]]],
    declared: Iterable[str] | None,
    where: str,
    origins: dict[str, str],
) -> NerData:
    """Convert string (or declared-list int) tags to ids, checking every tag name on the way."""
    declared_names = list(declared) if declared else None
    if declared_names:
        check_label_names(declared_names, f"{where}: dataset.label_names")
    seen: set[str] = set()
    for split, (_, tag_rows) in rows.items():
        for i, sentence_tags in enumerate(tag_rows):
            for tag in sentence_tags:
                if isinstance(tag, int):
                    if declared_names is None:
                        raise DataError(
                            f"{origins[split]}: tags are numbers but no label names are known: set dataset.label_names"
                        )
                    continue
                if not is_valid_tag_name(str(tag)):
                    raise DataError(
                        f"{origins[split]}: sentence {i}: invalid tag name {tag!r}: tags must be O, B-<TYPE> or I-<TYPE> (IOB2)"
                    )
                seen.add(str(tag))
    label_names = declared_names or sorted_label_names(seen)
    index = {name: i for i, name in enumerate(label_names)}
    splits = {}
    for split, (token_rows, tag_rows) in rows.items():
        id_rows = []
        for i, sentence_tags in enumerate(tag_rows):
            ids = []
            for tag in sentence_tags:
                if isinstance(tag, int):
                    ids.append(tag)
                elif tag in index:
                    ids.append(index[tag])
                else:
                    raise DataError(
                        f"{origins[split]}: sentence {i}: tag {tag!r} is not in the label set {label_names}: "
                        "add it to dataset.label_names or fix the data"
                    )
            id_rows.append(ids)
        keep = [i for i, toks in enumerate(token_rows) if len(toks) > 0]
        splits[split] = Dataset.from_dict(
            {"tokens": [token_rows[i] for i in keep], "tags": [id_rows[i] for i in keep]},
            features=datasets.Features(
                {
                    "tokens": datasets.Sequence(datasets.Value("string")),
                    "tags": datasets.Sequence(datasets.Value("int32")),
                }
            ),
        )
    return NerData(splits=splits, label_names=label_names, source=where)


# --- Shipped sample --------------------------------------------------------------------------------


def _read_sample(cfg: DatasetConfig) -> NerData:
    language = cfg.config_name or cfg.language or "bn"
    folder = SAMPLE_DIR / language
    if not folder.is_dir():
        options = sorted(p.name for p in SAMPLE_DIR.iterdir() if p.is_dir())
        raise DataError(
            f"the sample data set has no language {language!r}: use dataset.language={' or '.join(options)}"
        )
    rows = {split: read_jsonl(folder / f"{split}.jsonl") for split in SPLITS}
    data = _from_rows(rows, WIKIANN_LABELS, f"sample data ({language})", {s: str(folder / s) for s in SPLITS})
    data.language = language
    return data
