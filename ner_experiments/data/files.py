"""Reading data files line by line: 2-column CoNLL and JSON lines, keeping every problem with its line.

A leading UTF-8 byte order mark is dropped and Windows line ends (CRLF) are read as plain ends: both
are harmless, and both are noted so ``ner-data check`` can say so. Each token keeps the number of its
line, so a later check (an unknown tag, say) can still point at the line.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ner_experiments.data.problems import Problem, shown

DOCSTART = "-DOCSTART-"


@dataclass
class TextLines:
    """The decoded lines of a file as (1-based line number, text), and what reading them noticed."""

    lines: list[tuple[int, str]]
    problems: list[Problem] = field(default_factory=list)
    had_bom: bool = False
    had_crlf: bool = False


@dataclass
class FileRows:
    """Sentences read from one file: tokens, tags, the line of each token, and the problems found."""

    origin: str
    tokens: list[list[str]] = field(default_factory=list)
    tags: list[list[Any]] = field(default_factory=list)
    lines: list[list[int]] = field(default_factory=list)
    # (sentence, token) pairs with a problem: a lenient read leaves those words out
    bad: set[tuple[int, int]] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def where(self, sentence: int, token: int) -> str:
        """``path:line`` of a token, or ``origin sentence N`` for rows that did not come from lines."""
        if self.lines and self.lines[sentence]:
            return f"{self.origin}:{self.lines[sentence][token]}"
        return f"{self.origin} sentence {sentence + 1}"

    def add(self, tokens: list[str], tags: list[Any], lines: list[int], bad: Sequence[int] = ()) -> None:
        self.bad.update((len(self.tokens), j) for j in bad)
        self.tokens.append(tokens)
        self.tags.append(tags)
        self.lines.append(lines)


def read_lines(path: Path) -> TextLines:
    """Decode a file as UTF-8 without its BOM; lines that are not UTF-8 become problems, not an exception."""
    raw = path.read_bytes()
    had_bom = raw.startswith(codecs.BOM_UTF8)
    raw = raw[len(codecs.BOM_UTF8) :] if had_bom else raw
    had_crlf = b"\r\n" in raw
    raw = raw.replace(b"\r\n", b"\n")
    try:
        # split on "\n" only: str.splitlines would also break a token at U+2028 or U+0085
        texts = raw.decode("utf-8").split("\n")
        return TextLines(list(enumerate(texts, start=1)), [], had_bom, had_crlf)
    except UnicodeDecodeError:
        pass
    result = TextLines([], [], had_bom, had_crlf)
    for lineno, chunk in enumerate(raw.split(b"\n"), start=1):
        try:
            result.lines.append((lineno, chunk.decode("utf-8")))
        except UnicodeDecodeError:
            # the bytes as Python writes them: b'Jos\xe9\tB-PER' shows which byte is not UTF-8
            result.problems.append(Problem("not_utf8", f"{path}:{lineno}", repr(chunk[:60])))
    return result


def _notes(path: Path, text: TextLines) -> list[str]:
    notes = []
    if text.had_bom:
        notes.append(f"{path}: starts with a UTF-8 byte order mark (BOM): ignored")
    if text.had_crlf:
        notes.append(f"{path}: Windows line ends (CRLF): read as plain line ends")
    return notes


@dataclass(frozen=True)
class ConllLine:
    """One CoNLL line: ``kind`` is blank, docstart, token, no_tag or empty_token."""

    kind: str
    token: str = ""
    tag: str = ""


def parse_conll_line(text: str) -> ConllLine:
    """Split ``token<TAB or spaces>tag``; with more columns the first is the token and the last the tag.

    A tab-separated token may hold spaces. ``<TAB>O`` (nothing before the tab) is an empty token, not a
    line without a tag.
    """
    if not text.strip():
        return ConllLine("blank")
    if "\t" in text:
        columns = [c.strip() for c in text.split("\t")]
        fields = [c for c in columns if c]
        if fields[0] == DOCSTART:
            return ConllLine("docstart")
        if not columns[0]:
            return ConllLine("empty_token", "", fields[-1])
    else:
        fields = text.split()
        if fields[0] == DOCSTART:
            return ConllLine("docstart")
        if len(fields) == 1 and text[0].isspace():
            return ConllLine("empty_token", "", fields[0])
    if len(fields) < 2:
        return ConllLine("no_tag", fields[0])
    return ConllLine("token", fields[0], fields[-1])


def scan_conll(path: Path) -> FileRows:
    """Every sentence of a CoNLL file, and every line that cannot be read, with its line number."""
    text = read_lines(path)
    rows = FileRows(str(path), problems=list(text.problems), notes=_notes(path, text))
    tokens: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    for lineno, line in text.lines:
        parsed = parse_conll_line(line)
        if parsed.kind in ("blank", "docstart"):
            if tokens:
                rows.add(tokens, tags, lines)
            tokens, tags, lines = [], [], []
        elif parsed.kind == "token":
            tokens.append(parsed.token)
            tags.append(parsed.tag)
            lines.append(lineno)
        else:
            rows.problems.append(Problem(parsed.kind, f"{path}:{lineno}", shown(line)))
    if tokens:
        rows.add(tokens, tags, lines)
    return rows


def scan_jsonl(path: Path, tokens_key: str = "tokens", tags_key: str = "ner_tags") -> FileRows:
    """Every sentence of a JSON lines file (``tags`` is accepted for ``tags_key``), and every bad line."""
    text = read_lines(path)
    rows = FileRows(str(path), problems=list(text.problems), notes=_notes(path, text))
    for lineno, line in text.lines:
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            rows.problems.append(Problem("bad_json", where, f"{err.msg}: {shown(line, 40)}"))
            continue
        fields = row if isinstance(row, dict) else {}  # a line may hold any JSON value: 5, null, a list
        key = tags_key if tags_key in fields else "tags" if "tags" in fields else None
        if key is None or not isinstance(fields.get(tokens_key), list) or not isinstance(fields[key], list):
            expected = f"expected an object with {tokens_key!r} and {tags_key!r} lists"
            rows.problems.append(Problem("not_a_sentence", where, f"{expected}: {shown(line, 40)}"))
            continue
        tokens, tags = [str(t) for t in row[tokens_key]], list(row[key])
        if len(tokens) != len(tags):
            text_ = f"{len(tokens)} tokens but {len(tags)} tags"
            rows.problems.append(Problem("count_mismatch", where, text_))
            continue
        empty = [i for i, token in enumerate(tokens) if not token.strip()]
        for i in empty:
            rows.problems.append(
                Problem("empty_token", where, f"token {i + 1} of {len(tokens)} is {tokens[i]!r}")
            )
        rows.add(tokens, tags, [lineno] * len(tokens), bad=empty)
    return rows
