"""``ner-data``: check a data set before training, or write a cleaned copy of it.

    ner-data check dataset=conll_files dataset.data_dir=DIR [model=...] [--all-lines]
    ner-data fix dataset=conll_files dataset.data_dir=DIR --out FIXED [--bare-tags=IO|B] [--force]

Both take the config overrides train.py takes, composed from the same ``conf/``. Exit codes: 0 the data
can be trained on (check) or the copy was written (fix); 1 data problems remain; 2 a usage or config error.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

import datasets
from omegaconf import DictConfig

from ner_experiments.cli import compose_config
from ner_experiments.config import DatasetConfig
from ner_experiments.data.check import DataCheckReport, check_data
from ner_experiments.data.contract import FIX_COMMAND, FIXABLE, SHOWN_PER_KIND, NerData, format_problems
from ner_experiments.data.fix import BARE_TAG_MODES, FIX_ACTIONS, fix_files
from ner_experiments.data.readers import load_ner_data, read_data
from ner_experiments.errors import ConfigError, NerExperimentError

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``ner-data``; returns the exit code (see the module docstring)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("check", "fix"):
        print("usage: ner-data {check,fix} [overrides...] (ner-data check --help for more)", file=sys.stderr)
        return EXIT_USAGE
    command, options = args[0], _parser(args[0]).parse_intermixed_args(args[1:])
    try:
        cfg = compose_config(options.overrides)
        datasets.disable_progress_bars()  # the report is the output
        if command == "fix":
            return run_fix(cfg, options.out, options.bare_tags, options.force)
        return run_check(cfg, options.all_lines, names_model(options.overrides))
    except NerExperimentError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE if isinstance(err, ConfigError) else EXIT_PROBLEMS


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"ner-data {command}", description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="config overrides as for train.py: dataset=... a.b=c")
    if command == "check":
        help_ = "list every problem line (default: 20 per kind, then a count)"
        parser.add_argument("--all-lines", action="store_true", help=help_)
    else:
        parser.add_argument("--out", required=True, type=Path, help="a new folder for the cleaned copy")
        meanings = "; ".join(f"{mode}: {meaning}" for mode, meaning in BARE_TAG_MODES.items())
        help_ = f"what tags without B-/I- mean: {meanings}"
        parser.add_argument("--bare-tags", type=str.upper, choices=list(BARE_TAG_MODES), help=help_)
        help_ = "write into an --out folder that has files: its train/validation/test files are replaced"
        parser.add_argument("--force", action="store_true", help=help_)
    return parser


def names_model(overrides: Sequence[str]) -> bool:
    """True when the overrides choose a model (or an experiment, which does): piece counts are wanted."""
    return any(o.lstrip("+~").split("=", 1)[0].split(".")[0] in ("model", "experiment") for o in overrides)


def run_check(cfg: DictConfig, all_lines: bool = False, with_pieces: bool = False) -> int:
    """``ner-data check``: print the figures, every problem, warning and note; 0 if trainable, else 1."""
    reading = read_data(cfg.dataset, cfg.paths.cache_dir)
    report = check_data(reading.data)
    report.problems[:0] = reading.problems
    left_out = f"{len(reading.problems)} problems found while reading: the figures leave out their words"
    notes = reading.notes + ([left_out] if reading.problems else [])
    print(f"data set {cfg.dataset.name}: {reading.data.source}, labels {', '.join(reading.data.label_names)}")
    if report.figures:
        rows = _figure_rows(report) + (_piece_rows(cfg, reading.data) if with_pieces else [])
        print(render_table(rows))
    for title, items in (("warnings", report.warnings), ("notes", notes)):
        if items:
            print(f"\n{title}:\n" + "\n".join(f"  - {item}" for item in items))
    if report.problems:
        limit = len(report.problems) if all_lines else SHOWN_PER_KIND
        print(f"\n{format_problems(reading.data.source, report.problems, limit)}")
    n = len(report.warnings)
    warned = f" ({n} warning{'s' if n > 1 else ''} above)" if n else ""
    if report.can_train:
        print(f"\nOK: the data can be trained on{warned}")
        return EXIT_OK
    fixable = sum(p.kind in FIXABLE for p in report.problems)
    bare = " --bare-tags=IO|B" if any(p.kind == "bare_tag" for p in report.problems) else ""
    hint = f"; {FIX_COMMAND} --out DIR{bare} can fix {fixable} of them" if fixable else ""
    print(f"\nNOT TRAINABLE: {len(report.problems)} problems to fix first{hint}")
    return EXIT_PROBLEMS


def render_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells as aligned text: the first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    aligned = ([row[0].ljust(widths[0]), *map(str.rjust, row[1:], widths[1:])] for row in rows)
    return "\n".join("  ".join(cells).rstrip() for cells in aligned)


def length_summary(lengths: Sequence[int]) -> list[int]:
    """Minimum, median, 95th percentile and maximum of sentence lengths (0s when there are none)."""
    ordered = sorted(lengths) or [0]
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return [ordered[0], int(statistics.median(ordered)), p95, ordered[-1]]


def _figure_rows(report: DataCheckReport) -> list[list[str]]:
    """Sentences, words, entities per type and sentence lengths, one column per split."""
    figures = list(report.figures.values())
    rows = [["", *report.figures], ["sentences", *[f"{len(f.lengths):,}" for f in figures]]]
    rows.append(["words", *[f"{sum(f.lengths):,}" for f in figures]])
    rows.append(["entities", *[f"{sum(f.entities.values()):,}" for f in figures]])
    for kind in sorted(set().union(*(f.entities for f in figures))):
        rows.append([f"  {kind}", *[f"{f.entities.get(kind, 0):,}" for f in figures]])
    rows.append(["words per sentence", *["" for _ in figures]])
    summaries = [length_summary(f.lengths) for f in figures]
    for i, name in enumerate(("min", "median", "95th percentile", "max")):
        rows.append([f"  {name}", *[f"{s[i]:,}" for s in summaries]])
    return rows


def _piece_rows(cfg: DictConfig, data: NerData) -> list[list[str]]:
    """Sentence lengths in the model's pieces, and how many sentences will be split into windows."""
    from ner_experiments.features import FeatureSettings
    from ner_experiments.model import configured_tokenizer

    tokenizer = configured_tokenizer(cfg.model, cfg.paths.cache_dir)
    settings = FeatureSettings.for_run(cfg, tokenizer)
    pieces = {
        split: [
            len(ids)
            for ids in tokenizer(list(ds["tokens"]), is_split_into_words=True, verbose=False)["input_ids"]
        ]
        for split, ds in data.splits.items()
    }
    rows = [[f"pieces per sentence ({cfg.model.name})", *["" for _ in pieces]]]
    summaries = [length_summary(lengths) for lengths in pieces.values()]
    for i, name in enumerate(("min", "median", "95th percentile", "max")):
        rows.append([f"  {name}", *[f"{s[i]:,}" for s in summaries]])
    windowed = [sum(n > settings[split].max_length for n in lengths) for split, lengths in pieces.items()]
    limits = "/".join(sorted({str(settings[split].max_length) for split in pieces}))
    rows.append([f"  split into windows (> {limits} pieces)", *[f"{n:,}" for n in windowed]])
    return rows


def run_fix(cfg: DictConfig, out_dir: Path, bare_tags: str | None, force: bool = False) -> int:
    """``ner-data fix``: write the cleaned copy, list what was fixed and what was not; 0 if written."""
    if cfg.dataset.source != "files":
        raise ConfigError(
            f"ner-data fix works on files (dataset.source=files), not dataset.source={cfg.dataset.source}: "
            "use dataset=conll_files dataset.data_dir=DIR"
        )
    results, labels = fix_files(cfg.dataset, out_dir, bare_tags, force), cfg.dataset.label_names
    for result in results:
        print(f"{result.source}: " + (f"{len(result.fixed)} fixes:" if result.fixed else "nothing to fix"))
        for kind, action in FIX_ACTIONS.items():
            found = [p.where.rsplit(":", 1)[-1] for p in result.fixed if p.kind == kind]
            more = f" and {len(found) - 10} more" if len(found) > 10 else ""
            lines = f" ({len(found)}): line{'s' * (len(found) > 1)} {', '.join(found[:10])}{more}"
            if found:
                print(f"  {action}" + ("" if kind in ("bom", "crlf") else lines))
    unfixable = [p for r in results for p in r.unfixable]
    if unfixable:
        left_out = sum(r.left_out for r in results)
        print(f"\n{format_problems(str(cfg.dataset.data_dir), unfixable)}")
        noun = "sentence" if left_out == 1 else "sentences"
        print(f"\nleft out of the copy: {left_out} {noun} with the problems above (fix them in the input)")
    copy = DatasetConfig(name="fixed", source="files", data_dir=str(out_dir), label_names=labels)
    data = load_ner_data(copy)  # the promise: the copy loads as it is
    counts = ", ".join(f"{split} {len(ds)}" for split, ds in data.splits.items())
    train_on = f"train on it with dataset=conll_files dataset.data_dir={out_dir}"
    print(f"wrote {out_dir} ({counts} sentences): {train_on}")
    return EXIT_PROBLEMS if unfixable else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
