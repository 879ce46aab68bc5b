"""``ner-data``: check a data set before training, or write a cleaned copy of it.

    ner-data check dataset=conll_files dataset.data_dir=DIR [model=...] [--all-lines]
    ner-data fix dataset=conll_files dataset.data_dir=DIR --out FIXED [--bare-tags=IO|B]

Both take the config overrides train.py takes, composed from the same ``conf/``. Exit codes: 0 the data
can be trained on (check) or the copy was written (fix); 1 data problems remain; 2 a usage or config error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ner_experiments.cli import compose_config
from ner_experiments.errors import ConfigError, NerExperimentError

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"ner-data {command}", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "overrides", nargs="*", help="config overrides, as for train.py: dataset=... key=value"
    )
    if command == "check":
        parser.add_argument(
            "--all-lines",
            action="store_true",
            help="list every problem line (default: 20 per kind, then a count)",
        )
    if command == "fix":
        from ner_experiments.data.fix import BARE_TAG_MODES

        parser.add_argument(
            "--out", required=True, type=Path, help="folder for the cleaned copy (not the input)"
        )
        parser.add_argument(
            "--bare-tags",
            type=str.upper,
            choices=list(BARE_TAG_MODES),
            help="what tags without B-/I- mean: "
            + "; ".join(f"{mode}: {meaning}" for mode, meaning in BARE_TAG_MODES.items()),
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``ner-data``; returns the exit code (see the module docstring)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("check", "fix"):
        print("usage: ner-data {check,fix} [overrides...] (ner-data check --help for more)", file=sys.stderr)
        return EXIT_USAGE
    command, options = args[0], _parser(args[0]).parse_intermixed_args(args[1:])
    try:
        cfg = compose_config(options.overrides)
        if command == "check":
            from ner_experiments.data.report import run_check

            return run_check(cfg, _names_model(options.overrides), options.all_lines)
        from ner_experiments.data.report import run_fix

        return run_fix(cfg, options.out, options.bare_tags)
    except NerExperimentError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE if isinstance(err, ConfigError) else EXIT_PROBLEMS


def _names_model(overrides: Sequence[str]) -> bool:
    """True when the overrides choose a model (or an experiment, which does), so piece counts are wanted."""
    return any(o.lstrip("+~").split("=", 1)[0].split(".")[0] in ("model", "experiment") for o in overrides)


if __name__ == "__main__":
    sys.exit(main())
