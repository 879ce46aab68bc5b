"""What ``ner-data check`` and ``ner-data fix`` print: an aligned table per split, then problems,
warnings and notes, and a last line with the verdict."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from ner_experiments.config import DatasetConfig
from ner_experiments.data.check import DataCheckReport, check_reading, length_summary
from ner_experiments.data.contract import NerData
from ner_experiments.data.pieces import PieceFigures, model_limits, piece_figures
from ner_experiments.data.problems import FIX_COMMAND, SHOWN_PER_KIND, format_problems
from ner_experiments.errors import NerExperimentError

EXIT_OK, EXIT_PROBLEMS = 0, 1


def render_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells as aligned text: the first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def figures_table(report: DataCheckReport, pieces: PieceFigures | None) -> str:
    """Sentences, words, entities per type and sentence lengths, one column per split."""
    splits = list(report.figures)
    figures = [report.figures[s] for s in splits]
    rows = [["", *splits], ["sentences", *[f"{f.sentences:,}" for f in figures]]]
    rows.append(["words", *[f"{f.words:,}" for f in figures]])
    rows.append(["entities", *[f"{sum(f.entities.values()):,}" for f in figures]])
    for kind in sorted(set().union(*(f.entities for f in figures))):
        rows.append([f"  {kind}", *[f"{f.entities.get(kind, 0):,}" for f in figures]])
    rows.append(["words per sentence", *["" for _ in figures]])
    for i, name in enumerate(("min", "median", "95th percentile", "max")):
        rows.append([f"  {name}", *[f"{length_summary(f.lengths)[i]:,}" for f in figures]])
    if pieces is not None:
        budget = f"pieces per sentence (window: {pieces.budget} of max_length {pieces.max_length})"
        rows.append([budget, *["" for _ in figures]])
        for i, name in enumerate(("median", "95th percentile", "max")):
            rows.append([f"  {name}", *[f"{length_summary(pieces.lengths[s])[i + 1]:,}" for s in splits]])
        rows.append(["  sentences split into windows", *[f"{pieces.windowed[s]:,}" for s in splits]])
        rows.append(
            ["  words with no pieces (read as [UNK])", *[f"{pieces.no_piece_words[s]:,}" for s in splits]]
        )
        rows.append(["  words that are only [UNK]", *[f"{pieces.unknown_words[s]:,}" for s in splits]])
    return render_table(rows)


def _pieces(
    cfg: DictConfig, report: DataCheckReport, data: NerData, model_given: bool
) -> PieceFigures | None:
    if not model_given:
        report.notes.append(
            "no model given: sentence lengths in pieces need one (add model=... as for train.py)"
        )
        return None
    tokenizer, max_length = model_limits(cfg.model, cfg.paths.cache_dir)
    return piece_figures(data, tokenizer, max_length)


def _quiet_datasets() -> None:
    """No progress bars from reading a Hub layout: the report is the output."""
    import datasets

    datasets.disable_progress_bars()


def run_check(cfg: DictConfig, model_given: bool, all_lines: bool = False) -> int:
    """``ner-data check``: print the figures, every problem, warning and note; 0 if trainable, else 1."""
    from ner_experiments.data.readers import read_data

    _quiet_datasets()
    reading = read_data(cfg.dataset, cfg.paths.cache_dir)
    report = check_reading(reading)
    print(f"data set {cfg.dataset.name}: {reading.data.source}, labels {', '.join(reading.data.label_names)}")
    model_error = None
    try:
        pieces = _pieces(cfg, report, reading.data, model_given) if report.figures else None
    except NerExperimentError as err:  # the data report is still worth printing
        pieces, model_error = None, err
    if report.figures:
        print(figures_table(report, pieces))
    for title, items in (("warnings", report.warnings), ("notes", report.notes)):
        if items:
            print(f"\n{title}:")
            print("\n".join(f"  - {item}" for item in items))
    if report.problems:
        limit = len(report.problems) if all_lines else SHOWN_PER_KIND
        print(f"\n{format_problems(reading.data.source, report.problems, limit)}")
    if model_error is not None:
        print(f"\nerror: {model_error}")
        return EXIT_PROBLEMS
    print(f"\n{_verdict(report)}")
    return EXIT_OK if report.can_train else EXIT_PROBLEMS


def _verdict(report: DataCheckReport) -> str:
    n = len(report.warnings)
    warned = f" ({n} warning{'s' if n > 1 else ''} above)" if n else ""
    if report.can_train:
        return f"OK: the data can be trained on{warned}"
    fixable = sum(p.fixable for p in report.problems)
    bare = " --bare-tags=IO|B" if any(p.kind == "bare_tag" for p in report.problems) else ""
    hint = f"; {FIX_COMMAND} --out DIR{bare} can fix {fixable} of them" if fixable else ""
    return f"NOT TRAINABLE: {len(report.problems)} problems to fix first{hint}"


def run_fix(cfg: DictConfig, out_dir: Path, bare_tags: str | None) -> int:
    """``ner-data fix``: write the cleaned copy, list what was fixed and what was not; 0 if written."""
    from ner_experiments.data.fix import FIX_ACTIONS, fix_files
    from ner_experiments.data.readers import load_ner_data

    _quiet_datasets()
    if cfg.dataset.source != "files":
        raise NerExperimentError(
            f"ner-data fix works on files (dataset.source=files), not dataset.source={cfg.dataset.source}: "
            "use dataset=conll_files dataset.data_dir=DIR"
        )
    results = fix_files(cfg.dataset, out_dir, bare_tags)
    for result in results:
        kinds = {p.kind for p in result.fixed}
        print(f"{result.source}: " + (f"{len(result.fixed)} fixes:" if result.fixed else "nothing to fix"))
        for kind in (k for k in FIX_ACTIONS if k in kinds):
            found = [p for p in result.fixed if p.kind == kind]
            if kind in ("bom", "crlf"):
                print(f"  {FIX_ACTIONS[kind]}")
                continue
            lines = [p.where.rsplit(":", 1)[-1] for p in found[:10]]
            more = f" and {len(found) - 10} more" if len(found) > 10 else ""
            noun = "line" if len(found) == 1 else "lines"
            print(f"  {FIX_ACTIONS[kind]} ({len(found)}): {noun} {', '.join(lines)}{more}")
    unfixable = [p for r in results for p in r.unfixable]
    if unfixable:
        left_out = sum(r.left_out for r in results)
        print(f"\n{format_problems(str(cfg.dataset.data_dir), unfixable)}")
        noun = "sentence" if left_out == 1 else "sentences"
        print(f"\nleft out of the copy: {left_out} {noun} with the problems above (fix them in the input)")
    copy = DatasetConfig(
        name="fixed", source="files", data_dir=str(out_dir), label_names=cfg.dataset.label_names
    )
    data = load_ner_data(copy)  # the promise: the copy loads as it is
    counts = ", ".join(f"{split} {len(ds)}" for split, ds in data.splits.items())
    print(
        f"wrote {out_dir} ({counts} sentences): train on it with dataset=conll_files dataset.data_dir={out_dir}"
    )
    return EXIT_PROBLEMS if unfixable else EXIT_OK
