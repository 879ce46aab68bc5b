"""Readers that turn each data source into the :class:`NerData` contract, keeping every problem found.

- ``hub``: a Hub data set id, or a local folder laid out like the Hub repo (both via ``load_dataset``).
- ``files``: train/validation/test files, 2-column CoNLL or JSON lines; each word keeps its line number.
- ``sample``: the small data set shipped inside the package (WikiANN schema).
"""

from __future__ import annotations

import codecs
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
from datasets import ClassLabel, Dataset, DatasetDict

from ner_experiments.config import DatasetConfig
from ner_experiments.data.contract import SPLITS, NerData, Problem, columns, raise_problems, validate_ner_data
from ner_experiments.errors import DataError
from ner_experiments.labels import check_label_names, sorted_label_names, tag_problem
from ner_experiments.offline import is_network_error, offline_advice

log = logging.getLogger(__name__)

WIKIANN_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_data"
CONLL_SUFFIXES = (".conll", ".txt", ".tsv", ".iob", ".iob2", ".annotated")
JSONL_SUFFIXES = (".jsonl", ".json")
DOCSTART = "-DOCSTART-"
INT_LISTS = datasets.Sequence(datasets.Value("int32"))
CONTRACT_FEATURES = datasets.Features(
    {"tokens": datasets.Sequence(datasets.Value("string")), "tags": INT_LISTS}
)


@dataclass
class DataReading:
    """What reading found: the data without the words that have problems, the problems, harmless notes."""

    data: NerData
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def load_ner_data(cfg: DatasetConfig, cache_dir: str | None = None) -> NerData:
    """The configured data set, validated and cut to size; one :class:`DataError` lists every problem."""
    reading = read_data(cfg, cache_dir)
    raise_problems(reading.data.source, reading.problems)
    validate_ner_data(reading.data)
    return reading.data


def read_data(cfg: DatasetConfig, cache_dir: str | None = None) -> DataReading:
    """Read the configured data set, collecting problems instead of stopping at the first; raises
    :class:`DataError` only when nothing can be read at all (no folder, no file, no such split)."""
    if cfg.source == "hub":
        reading = _read_hub(cfg, cache_dir)
    elif cfg.source == "files":
        rows = {split: scan_file(path, cfg) for split, path in split_files(cfg).items()}
        reading = _from_rows(rows, cfg.label_names, str(cfg.data_dir))
    elif cfg.source == "sample":
        reading = _read_sample(cfg)
    else:  # validate_config rejects this earlier; kept for callers that skip it
        raise DataError(f"dataset.source={cfg.source!r} is not valid: use hub, files or sample")
    reading.data.language = reading.data.language or cfg.language
    limits = (cfg.max_train_samples, cfg.max_eval_samples, cfg.max_eval_samples)
    for split, limit in zip(SPLITS, limits, strict=True):
        ds = reading.data.splits.get(split)
        if limit is not None and ds is not None and len(ds) > limit:
            reading.data.splits[split] = ds.select(range(limit))
    return reading


# --- Files, line by line ---------------------------------------------------------------------------

Word = tuple[str, str, Any]  # (where it is, e.g. "path:line"; token; tag)


@dataclass
class FileRows:
    """Sentences read from one source as words, without those a reader could not use, and what was found."""

    sentences: list[list[Word]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # harmless and ignored: "bom", "crlf"
    broken: set[int] = field(default_factory=set)  # sentences with a line that cannot be read

    def line_problem(self, kind: str, where: str, text: str) -> None:
        """A problem of the sentence being read; all but an empty token break it (fix leaves it out)."""
        self.problems.append(Problem(kind, where, text))
        if kind != "empty_token":
            self.broken.add(len(self.sentences))


def read_lines(path: Path, rows: FileRows) -> list[tuple[int, str | bytes]]:
    """(1-based number, text) of each line, as UTF-8 without a BOM, split at ``\\n`` only (``splitlines``
    would also split at U+2028 or U+0085); a line that is not UTF-8 stays bytes, for the scanner to report."""
    raw = path.read_bytes()
    if raw.startswith(codecs.BOM_UTF8):
        rows.notes["bom"] = f"{path}: starts with a UTF-8 byte order mark (BOM): ignored"
    if b"\r\n" in raw:
        rows.notes["crlf"] = f"{path}: Windows line ends (CRLF): read as plain line ends"
    lines: list[tuple[int, str | bytes]] = []
    for lineno, chunk in enumerate(raw.removeprefix(codecs.BOM_UTF8).replace(b"\r\n", b"\n").split(b"\n"), 1):
        try:
            lines.append((lineno, chunk.decode("utf-8")))
        except UnicodeDecodeError:
            lines.append((lineno, chunk))
    return lines


def scan_conll(path: Path) -> FileRows:
    """Every sentence of a CoNLL file, and every line that cannot be read, with its line number.

    A line is ``token<TAB or spaces>tag``; with more columns the first is the token and the last the tag.
    """
    rows = FileRows()
    sentence: list[Word] = []
    lines = [*read_lines(path, rows), (0, "")]  # a blank line at the end closes the last sentence
    for lineno, line in lines:
        where = f"{path}:{lineno}"
        if isinstance(line, bytes):  # shown as Python writes bytes, the bad byte is visible: b'Jos\\xe9'
            rows.line_problem("not_utf8", where, repr(line[:60]))
            continue
        tabbed = "\t" in line  # then a token may hold spaces
        columns = [c.strip() for c in line.split("\t")] if tabbed else line.split()
        fields = [c for c in columns if c]
        empty_token = not columns[0] if tabbed else len(fields) == 1 and line[0].isspace()  # "<TAB>O"
        if not fields or fields[0] == DOCSTART:
            if sentence or len(rows.sentences) in rows.broken:  # a bad line on its own is a sentence too
                rows.sentences.append(sentence)
            sentence = []
        elif empty_token:
            rows.line_problem("empty_token", where, shown(line))
        elif len(fields) < 2:
            rows.line_problem("no_tag", where, shown(line))
        else:
            sentence.append((where, fields[0], fields[-1]))
    return rows


def scan_jsonl(path: Path, tokens_key: str = "tokens", tags_key: str = "ner_tags") -> FileRows:
    """Every sentence of a JSON lines file (``tags`` is accepted for ``tags_key``), and every bad line."""
    rows = FileRows()
    for lineno, line in read_lines(path, rows):
        if isinstance(line, bytes) or line.strip():
            rows.sentences.append(_json_sentence(line, f"{path}:{lineno}", rows, (tokens_key, tags_key)))
    return rows


def _json_sentence(line: str | bytes, where: str, rows: FileRows, keys: tuple[str, str]) -> list[Word]:
    tokens_key, tags_key = keys
    if isinstance(line, bytes):
        rows.line_problem("not_utf8", where, repr(line[:60]))
        return []
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        rows.line_problem("bad_json", where, f"{err.msg}: {shown(line, 40)}")
        return []
    fields = row if isinstance(row, dict) else {}  # a line may hold any JSON value: 5, null, a list
    key = tags_key if tags_key in fields else "tags"
    if not isinstance(fields.get(tokens_key), list) or not isinstance(fields.get(key), list):
        expected = f"expected an object with {tokens_key!r} and {tags_key!r} lists"
        rows.line_problem("not_a_sentence", where, f"{expected}: {shown(line, 40)}")
        return []
    return _words(row[tokens_key], row[key], where, rows)


def _words(tokens: list, tags: list, where: str, rows: FileRows) -> list[Word]:
    """One sentence's words without its empty tokens; those and a count mismatch are problems in ``rows``."""
    if len(tokens) != len(tags):
        rows.line_problem("count_mismatch", where, f"{len(tokens)} tokens but {len(tags)} tags")
        return []
    words = []
    for i, (token, tag) in enumerate(zip(map(str, tokens), tags, strict=True)):
        if token.strip():
            words.append((where, token, tag))
        else:
            rows.line_problem("empty_token", where, f"token {i + 1} of {len(tokens)} is {token!r}")
    return words


def shown(text: str, width: int = 60) -> str:
    """The offending text as Python writes it (tabs and invisible characters visible), cut to ``width``."""
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def read_conll(path: Path) -> tuple[list[list[str]], list[list[str]]]:
    """Tokens and tags of a 2-column CoNLL file; one :class:`DataError` lists every unreadable line."""
    return _strict(str(path), scan_conll(path))


def read_jsonl(path: Path, tokens_key: str = "tokens", tags_key: str = "ner_tags") -> tuple[list, list]:
    """Tokens and tags of a JSON lines file; one :class:`DataError` lists every unreadable line."""
    return _strict(str(path), scan_jsonl(path, tokens_key, tags_key))


def _strict(where: str, rows: FileRows) -> tuple[list, list]:
    raise_problems(where, rows.problems)
    return [[w[1] for w in s] for s in rows.sentences], [[w[2] for w in s] for s in rows.sentences]


def split_files(cfg: DatasetConfig) -> dict[str, Path]:
    """The file of each split under ``dataset.data_dir``."""
    data_dir = Path(str(cfg.data_dir))
    if not data_dir.is_dir():
        raise DataError(
            f"dataset.data_dir={data_dir} does not exist: give a folder with train/validation/test files"
        )
    found = {}
    for split, stem in zip(SPLITS, (cfg.train_file, cfg.validation_file, cfg.test_file), strict=True):
        path = data_dir / stem
        if not path.is_file():
            candidates = sorted(
                p for p in data_dir.glob(stem + ".*") if p.suffix in CONLL_SUFFIXES + JSONL_SUFFIXES
            )
            if not candidates:
                raise DataError(
                    f"no {split} file in {data_dir}: expected {stem}.conll / .jsonl (or set dataset.{split}_file)"
                )
            path = candidates[0]
        found[split] = path
    return found


def scan_file(path: Path, cfg: DatasetConfig) -> FileRows:
    """A split file read as ``dataset.file_format`` says (``auto``: by its extension)."""
    fmt = cfg.file_format
    if fmt == "jsonl" or (fmt == "auto" and path.suffix in JSONL_SUFFIXES):
        return scan_jsonl(path, cfg.tokens_column, cfg.tags_column)
    return scan_conll(path)


def _from_rows(rows: dict[str, FileRows], declared: Iterable[str] | None, where: str) -> DataReading:
    """The data with tags as ids, and every problem; words whose tag has a problem are left out."""
    declared_names = list(declared) if declared else None
    if declared_names:
        check_label_names(declared_names, f"{where}: dataset.label_names")
    problems = [p for split_rows in rows.values() for p in split_rows.problems]
    seen: set = set()
    kept = {split: _check_tags(r.sentences, declared_names, seen, problems) for split, r in rows.items()}
    label_names = declared_names or sorted_label_names(seen)
    index = {name: i for i, name in enumerate(label_names)}
    splits = {}
    for split, sentences in kept.items():
        sentences = [s for s in sentences if s]  # sentences without words are left out
        tokens = [[token for _, token, _ in s] for s in sentences]
        ids = [[tag if isinstance(tag, int) else index[tag] for *_, tag in s] for s in sentences]
        splits[split] = Dataset.from_dict({"tokens": tokens, "tags": ids}, features=CONTRACT_FEATURES)
    notes = [note for split_rows in rows.values() for note in split_rows.notes.values()]
    return DataReading(NerData(splits=splits, label_names=label_names, source=where), problems, notes)


def _check_tags(
    sentences: list[list[Word]], declared: list[str] | None, seen: set, problems: list[Problem]
) -> list[list[Word]]:
    """The sentences without the words whose tag is a problem (added to ``problems``); good tags go to ``seen``."""
    kept: list[list[Word]] = []
    numbers_reported = False  # numbers without label names: one problem per file, not one per tag
    for sentence in sentences:
        kept.append([])
        for where, token, tag in sentence:
            tag = tag if isinstance(tag, int) else str(tag)
            n_labels = len(declared or ())
            unknown = "unknown_label" if declared and tag not in declared else None
            if isinstance(tag, int) and declared is None:
                if not numbers_reported:
                    text = f"tags are numbers, e.g. {tag} (word {token!r}), and no label names are known"
                    problems.append(Problem("numeric_tags", where, text))
                numbers_reported = True
            elif isinstance(tag, int) and not 0 <= tag < n_labels:
                text = f"tag id {tag} (word {token!r}): the label set has {n_labels} labels"
                problems.append(Problem("tag_id_out_of_range", where, text, str(tag)))
            elif isinstance(tag, str) and (kind := tag_problem(tag) or unknown):
                problems.append(Problem(kind, where, f"{tag!r} (word {token!r})", tag))
            else:
                kept[-1].append((where, token, tag))
                seen.add(tag)
    return kept


# --- Hub and the shipped sample ---------------------------------------------------------------------


def _load_hub(cfg: DatasetConfig, where: str, cache_dir: str | None) -> DatasetDict:
    """``datasets.load_dataset``, its common failures turned into one line each."""
    try:
        raw = datasets.load_dataset(cfg.path, cfg.config_name, revision=cfg.revision, cache_dir=cache_dir)
    except Exception as err:  # the library raises many types
        if is_network_error(err):
            advice = offline_advice("dataset")
            raise DataError(f"cannot load data set {where}: the Hub cannot be reached. {advice}") from err
        text = str(err)
        if isinstance(err, FileNotFoundError) or "doesn't exist" in text or "not found" in text.lower():
            raise DataError(
                f"data set {where} was not found: check dataset.path (a Hub id or a local folder) and dataset.config_name"
            ) from err
        if isinstance(err, ValueError) and "config" in text.lower():
            raise DataError(f"data set {cfg.path}: {text.splitlines()[0]}") from err
        raise
    assert isinstance(raw, DatasetDict)
    return raw


def _read_hub(cfg: DatasetConfig, cache_dir: str | None) -> DataReading:
    where = f"{cfg.path}" + (f" (config {cfg.config_name})" if cfg.config_name else "")
    raw = _load_hub(cfg, where, cache_dir)
    names = dict(zip(SPLITS, (cfg.train_split, cfg.validation_split, cfg.test_split), strict=True))
    splits = {}
    for split, name in names.items():
        if name not in raw:
            raise DataError(
                f"data set {where} has no split {name!r} (it has {', '.join(raw)}): set dataset.<train|validation|test>_split"
            )
        for column in (c for c in (cfg.tokens_column, cfg.tags_column) if c not in raw[name].column_names):
            raise DataError(
                f"data set {where} has no column {column!r} (it has {', '.join(raw[name].column_names)}): "
                "set dataset.tokens_column / dataset.tags_column"
            )
        ds = raw[name].select_columns([cfg.tokens_column, cfg.tags_column])
        splits[split] = ds.rename_columns({cfg.tokens_column: "tokens", cfg.tags_column: "tags"})
    inner = getattr(splits["train"].features["tags"], "feature", None)
    if not isinstance(inner, ClassLabel):  # string tags (or ints with a declared list): read like files
        rows = {split: FileRows() for split in SPLITS}
        for split, ds in splits.items():
            for i, (tokens, tags) in enumerate(zip(*columns(ds).values(), strict=True)):
                sentence = _words(tokens, tags, f"{where} {names[split]} sentence {i + 1}", rows[split])
                rows[split].sentences.append(sentence)
        return _from_rows(rows, cfg.label_names, where)
    check_label_names(inner.names, where)
    if cfg.label_names and list(cfg.label_names) != inner.names:
        log.warning("dataset.label_names is ignored: %s declares its labels as %s", where, inner.names)
    splits = {split: ds.cast_column("tags", INT_LISTS) for split, ds in splits.items()}
    return DataReading(NerData(splits=splits, label_names=list(inner.names), source=where))


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
