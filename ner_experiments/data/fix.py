"""``ner-data fix``: a cleaned copy of a files data set, with only what can be fixed without guessing.

Fixed: a leading BOM, CRLF line ends, lines with an empty token (dropped), BILOU/IOBES tags and I- tags
that start an entity (rewritten as IOB2), and tags without B-/I- as ``--bare-tags`` says. Anything else
(a line without a tag, a broken tag name, bad JSON) needs a person: the sentence it is in is left out of
the copy, and the line is listed with its number in the input file.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ner_experiments.config import DatasetConfig
from ner_experiments.data.files import parse_conll_line, read_lines, scan_jsonl
from ner_experiments.data.problems import Problem, shown
from ner_experiments.data.readers import split_files
from ner_experiments.errors import ConfigError, DataError
from ner_experiments.labels import tag_problem

BARE_TAG_MODES = {
    "IO": "a run of words with the same bare tag is one entity: TIM TIM -> B-TIM I-TIM",
    "B": "every word with a bare tag is an entity of its own: TIM TIM -> B-TIM B-TIM",
}
FIX_ACTIONS = {  # what fix did, by kind
    "bom": "byte order mark removed",
    "crlf": "CRLF line ends written as LF",
    "empty_token": "line with an empty token dropped",
    "bare_tag": "B-/I- added to a bare tag",
    "other_scheme": "BILOU/IOBES tag rewritten as IOB2 (U-/S- -> B-, L-/E- -> I-)",
    "iob1_start": "I- tag that starts an entity rewritten as B-",
}


@dataclass
class FileFix:
    """One input file: the lines of its cleaned copy, what was changed, and what could not be."""

    source: Path
    target_name: str
    lines: list[str] = field(default_factory=list)
    fixed: list[Problem] = field(default_factory=list)
    unfixable: list[Problem] = field(default_factory=list)
    left_out: int = 0  # sentences left out of the copy for an unfixable problem


@dataclass
class TagFixer:
    """Rewrites one tag at a time as IOB2; ``previous`` is the fixed tag before it in the sentence."""

    bare_tags: str | None
    declared: Sequence[str] | None
    previous: str = "O"

    def fix(self, tag: str, where: str, word: str, out: FileFix) -> str:
        kind = tag_problem(tag)
        new = tag
        text = f"{tag!r} (word {word!r})"
        if kind == "invalid_tag" or (kind == "bare_tag" and self.bare_tags is None):
            out.unfixable.append(Problem(kind, where, text, tag))
            self.previous = "O"
            return tag
        if kind == "bare_tag":
            new = ("I-" if self.bare_tags == "IO" else "B-") + tag
        elif kind == "other_scheme":
            new = ("B-" if tag[0] in "US" else "I-") + tag[2:]
        if new.startswith("I-") and self.previous[2:] != new[2:]:
            new = "B-" + new[2:]
            kind = kind or "iob1_start"
        if kind is not None:
            out.fixed.append(Problem(kind, where, f"{text} -> {new!r}", tag))
        if self.declared is not None and new not in self.declared:
            out.unfixable.append(Problem("unknown_label", where, f"{new!r} (word {word!r})", new))
        self.previous = new
        return new


def fix_files(cfg: DatasetConfig, out_dir: Path, bare_tags: str | None) -> list[FileFix]:
    """Fix every split file of ``cfg`` and write the copies to ``out_dir``.

    The copies are named ``<split>.conll`` / ``<split>.jsonl``, so ``dataset=conll_files
    dataset.data_dir=<out_dir>`` loads them. The input is never written to. Raises
    :class:`ConfigError`, writing nothing, when bare tags are found and ``bare_tags`` does not say
    what they mean: that is the user's choice to make, not a sentence to leave out.
    """
    files = split_files(cfg)
    inputs = {path.resolve().parent for path, _ in files.values()}
    if out_dir.resolve() in inputs:
        raise DataError(
            f"--out {out_dir} is the input folder: give a new folder (fix never changes the input)"
        )
    declared = list(cfg.label_names) if cfg.label_names else None
    results = []
    for split, (path, fmt) in files.items():
        if fmt == "jsonl":
            result = _fix_jsonl(path, cfg, TagFixer(bare_tags, declared))
        else:
            result = _fix_conll(path, TagFixer(bare_tags, declared))
        result.target_name = f"{split}.{fmt}"
        results.append(result)
    bare = Counter(p.value for r in results for p in r.unfixable if p.kind == "bare_tag")
    if bare:
        found = ", ".join(f"{tag!r} {n}" for tag, n in bare.most_common(5))
        modes = "; ".join(f"--bare-tags={mode} if {meaning}" for mode, meaning in BARE_TAG_MODES.items())
        raise ConfigError(
            f"{sum(bare.values())} tags without B-/I- ({found}): say what they mean with {modes}. Nothing written"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for result in results:
        (out_dir / result.target_name).write_text("\n".join(result.lines) + "\n", encoding="utf-8")
    return results


def _start(path: Path) -> tuple[FileFix, list[tuple[int, str | None]]]:
    """Read a file for fixing: its BOM and CRLF count as fixed; a line that is not UTF-8 is None."""
    text = read_lines(path)
    result = FileFix(path, "", unfixable=list(text.problems))
    if text.had_bom:
        result.fixed.append(Problem("bom", f"{path}:1", "byte order mark"))
    if text.had_crlf:
        result.fixed.append(Problem("crlf", str(path), "CRLF line ends"))
    lines: list[tuple[int, str | None]] = list(text.lines)
    for problem in text.problems:
        lines.append((int(problem.where.rsplit(":", 1)[1]), None))
    lines.sort(key=lambda item: item[0])
    if lines and lines[-1][1] == "":
        lines = lines[:-1]  # the file's final line end; written back by fix_files
    return result, lines


def _fix_conll(path: Path, tags: TagFixer) -> FileFix:
    result, lines = _start(path)
    sentence: list[str] = []
    keep = True
    for lineno, line in [*lines, (0, "")]:  # a blank line at the end closes the last sentence
        parsed = parse_conll_line(line) if line is not None else None
        if parsed is not None and parsed.kind in ("blank", "docstart"):
            if sentence and keep:
                result.lines += sentence
            result.left_out += bool(sentence) and not keep
            if lineno:
                result.lines.append(line)
            sentence, keep, tags.previous = [], True, "O"
            continue
        where = f"{path}:{lineno}"
        unfixable = len(result.unfixable)
        if parsed is None:
            keep = False
        elif parsed.kind == "empty_token":
            result.fixed.append(Problem("empty_token", where, shown(line)))
        elif parsed.kind == "no_tag":
            result.unfixable.append(Problem("no_tag", where, shown(line)))
        else:
            new = tags.fix(parsed.tag, where, parsed.token, result)
            sentence.append(line if new == parsed.tag else _with_tag(line, new))
        keep = keep and len(result.unfixable) == unfixable
    return result


def _with_tag(line: str, tag: str) -> str:
    """The line with its last column (the tag) replaced; other columns and spacing kept."""
    match = re.search(r"\S+(\s*)$", line)
    assert match is not None  # a token line has a tag
    return line[: match.start()] + tag + match.group(1)


def _fix_jsonl(path: Path, cfg: DatasetConfig, tags: TagFixer) -> FileFix:
    result, lines = _start(path)
    # Lines that cannot be read as sentences are what scan_jsonl reports; they cannot be fixed here.
    scanned = scan_jsonl(path, cfg.tokens_column, cfg.tags_column)
    result.unfixable += [p for p in scanned.problems if p.kind not in ("not_utf8", "empty_token")]
    broken = {p.where for p in result.unfixable}
    for lineno, line in lines:
        where = f"{path}:{lineno}"
        if line is None or where in broken:
            result.left_out += 1
            continue
        if not line.strip():
            continue
        unfixable = len(result.unfixable)
        line = _fix_json_line(line, where, cfg, tags, result)
        if len(result.unfixable) == unfixable:
            result.lines.append(line)
        else:
            result.left_out += 1
    return result


def _fix_json_line(line: str, where: str, cfg: DatasetConfig, tags: TagFixer, result: FileFix) -> str:
    """One sentence object with empty tokens dropped and its tags rewritten as IOB2."""
    row = json.loads(line)
    key = cfg.tags_column if cfg.tags_column in row else "tags"
    words, old = [str(t) for t in row[cfg.tokens_column]], list(row[key])
    keep = [i for i, word in enumerate(words) if word.strip()]
    if len(keep) < len(words):
        result.fixed.append(Problem("empty_token", where, f"{len(words) - len(keep)} empty tokens dropped"))
    tags.previous = "O"
    new = [
        old[i] if isinstance(old[i], int) else tags.fix(str(old[i]), where, words[i], result) for i in keep
    ]
    if len(keep) == len(words) and new == old:
        return line
    row[cfg.tokens_column] = [row[cfg.tokens_column][i] for i in keep]
    row[key] = new
    return json.dumps(row, ensure_ascii=False)
