"""``ner-data fix``: a cleaned copy of a files data set, with only what can be fixed without guessing
(see :data:`FIX_ACTIONS`); a sentence with any other problem is left out of the copy and listed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ner_experiments.config import DatasetConfig
from ner_experiments.data.contract import FIXABLE, Problem
from ner_experiments.data.readers import (
    CONLL_SUFFIXES,
    JSONL_SUFFIXES,
    SPLITS,
    FileRows,
    scan_file,
    split_files,
)
from ner_experiments.errors import ConfigError
from ner_experiments.labels import tag_problem

BARE_TAG_MODES = {
    "IO": "a run of words with the same bare tag is one entity: TIM TIM -> B-TIM I-TIM",
    "B": "every word with a bare tag is an entity of its own: TIM TIM -> B-TIM B-TIM",
}
FIX_ACTIONS = {  # what fix did, by kind, in the order it is printed
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
        kind, new, text = tag_problem(tag), tag, f"{tag!r} (word {word!r})"
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


def fix_files(cfg: DatasetConfig, out_dir: Path, bare_tags: str | None, force: bool = False) -> list[FileFix]:
    """Write the fixed copy of each split file to ``out_dir/<split>.conll`` (never into the input folder).

    Raises :class:`ConfigError`, writing nothing, when ``out_dir`` is the input folder, a file, or a
    folder with files in it (unless ``force``: then its split files are replaced, so no stale
    ``train.jsonl`` stays beside the new ``train.conll``), and when bare tags are found and
    ``bare_tags`` does not say what they mean: that is the user's choice to make."""
    files = split_files(cfg)
    if out_dir.resolve() in {path.resolve().parent for path in files.values()}:
        raise ConfigError(
            f"--out {out_dir} is the input folder: give a new folder (fix never changes the input)"
        )
    _check_out_dir(out_dir, force)
    declared = list(cfg.label_names) if cfg.label_names else None
    results = {}
    for split, path in files.items():
        results[split] = _fix_rows(path, scan_file(path, cfg), TagFixer(bare_tags, declared))
    bare = Counter(p.value for r in results.values() for p in r.unfixable if p.kind == "bare_tag")
    if bare:
        found = ", ".join(f"{tag!r} {n}" for tag, n in bare.most_common(5))
        modes = "; ".join(f"--bare-tags={mode} if {meaning}" for mode, meaning in BARE_TAG_MODES.items())
        raise ConfigError(
            f"{sum(bare.values())} tags without B-/I- ({found}): say what they mean with {modes}. Nothing written"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in _split_files_in(out_dir):
        stale.unlink()
    for split, result in results.items():
        (out_dir / f"{split}.conll").write_text("\n".join(result.lines), encoding="utf-8")
    return list(results.values())


def _check_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file: give a new folder for the cleaned copy")
    held = sorted(p.name for p in out_dir.iterdir()) if out_dir.is_dir() else []
    if held and not force:
        shown = ", ".join(held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "")
        raise ConfigError(
            f"--out {out_dir} is not empty ({shown}): give a new or empty folder, or add --force to replace "
            "its train/validation/test files"
        )


def _split_files_in(folder: Path) -> list[Path]:
    """Files a reader could take for a split (``train``, ``train.jsonl``...): replaced by the copy."""
    suffixes = (*CONLL_SUFFIXES, *JSONL_SUFFIXES)
    return [
        p
        for p in folder.iterdir()
        if p.is_file() and p.name.split(".", 1)[0] in SPLITS and (p.suffix in suffixes or p.name in SPLITS)
    ]


def _fix_rows(path: Path, rows: FileRows, tags: TagFixer) -> FileFix:
    """The copy of one file as ``token<TAB>tag`` lines, without the sentences that cannot be fixed."""
    result = FileFix(path, fixed=[Problem(kind, f"{path}:1", note) for kind, note in rows.notes.items()])
    result.fixed += [p for p in rows.problems if p.kind in FIXABLE]
    result.unfixable += [p for p in rows.problems if p.kind not in FIXABLE]
    for i, sentence in enumerate(rows.sentences):
        unfixable, tags.previous = len(result.unfixable), "O"
        fixed = [
            (token, tags.fix(_tag_name(tag, tags.declared), where, token, result))
            for where, token, tag in sentence
        ]
        if i in rows.broken or len(result.unfixable) > unfixable:
            result.left_out += 1
        elif fixed:
            result.lines += [f"{token}\t{tag}" for token, tag in fixed] + [""]
    return result


def _tag_name(tag: object, declared: Sequence[str] | None) -> str:
    """A tag as a name: a label id (JSON lines) is named by the declared label list."""
    return declared[tag] if isinstance(tag, int) and declared and 0 <= tag < len(declared) else str(tag)
