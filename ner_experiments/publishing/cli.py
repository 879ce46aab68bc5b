"""Console scripts ``ner-publish``, ``ner-predict`` and ``ner-evaluate`` (argparse flags, one style).

    ner-publish outputs/2026-11-24/12-00-00_xyz --repo-id me/bengali-ner [--private] [--dry-run]
    ner-predict --model outputs/2026-11-24/12-00-00_xyz "সিডনি ক্রিকেট গ্রাউন্ড"   (or --input file.txt)
    ner-evaluate --model me/bengali-ner --split test dataset=wikiann_bn [--show-errors 3]
    ner-evaluate --compare RUN_A RUN_B [--split test]

A user error prints ``error: <one line>`` on stderr and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ner_experiments.errors import NerExperimentError

log = logging.getLogger("ner_experiments")


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except Exception:
        pass


def _main(parser: argparse.ArgumentParser, fn: Callable[[argparse.Namespace], int], argv: Any) -> int:
    """Parse, run ``fn``, print a user error as one line; exit with the code when run as a script."""
    args = parser.parse_args(argv)
    code = _run(fn, args)
    if argv is None:
        sys.exit(code)
    return code


def _run(fn: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    _quiet_libraries()
    try:
        return fn(args)
    except NerExperimentError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


# --- ner-publish -----------------------------------------------------------------------------------


def build_publish_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ner-publish",
        description="Upload a finished run (model, tokenizer, config, model card) to the Hugging Face Hub.",
        epilog="The token comes from HF_TOKEN or `hf auth login`; it is never written anywhere.",
    )
    p.add_argument("run_dir", help="a finished run directory (it has model/ and metrics.json)")
    p.add_argument("--repo-id", required=True, help="the Hub repo to create or update, e.g. me/bengali-ner")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="write and list the folder that would be uploaded, upload nothing (no token or network needed; "
        "the only mode allowed when HF_HUB_OFFLINE=1)",
    )
    p.add_argument("--license", default=None, help="license in the card (default: the run's hub.license)")
    p.add_argument(
        "--keep-card",
        action="store_true",
        help="upload the run's README.md as it is instead of regenerating it for this repo id",
    )
    p.add_argument("--max-retries", type=int, default=3, help="retries on network failures (default 3)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _publish(args: argparse.Namespace, api: Any = None) -> int:
    from omegaconf import OmegaConf, open_dict

    from ner_experiments.publishing.card import build_model_card
    from ner_experiments.publishing.push import PublishError, publish_run, report_push

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise PublishError(
            f"no run directory at {run_dir}: give the folder a training run printed (run dir: ...)"
        )
    metrics_path, config_path = run_dir / "metrics.json", run_dir / "config.yaml"
    if not metrics_path.is_file() or not config_path.is_file():
        raise PublishError(
            f"{run_dir} is not a finished run (no metrics.json or config.yaml): publish a completed run"
        )
    card_text = None
    if not args.keep_card:
        cfg = OmegaConf.load(config_path)
        if args.license:
            with open_dict(cfg):
                cfg.hub.license = args.license
        results = json.loads(metrics_path.read_text(encoding="utf-8"))
        card_text = str(build_model_card(cfg, results, repo_id=args.repo_id))
    result = publish_run(
        run_dir,
        args.repo_id,
        private=args.private,
        dry_run=args.dry_run,
        max_retries=args.max_retries,
        card_text=card_text,
        api=api,
    )
    report_push(result)
    return 0


def publish_main(argv: Sequence[str] | None = None, api: Any = None) -> int:
    """``ner-publish RUN_DIR --repo-id ID [--private] [--dry-run]``."""
    return _main(build_publish_parser(), lambda a: _publish(a, api), argv)


# --- ner-predict -----------------------------------------------------------------------------------


def build_predict_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ner-predict",
        description="Tag text with a saved NER model; prints one JSON line per input sentence.",
    )
    p.add_argument("text", nargs="*", help="sentences to tag (or use --input)")
    p.add_argument(
        "--model", required=True, help="a run directory, a model folder, or a Hub id (e.g. me/bengali-ner)"
    )
    p.add_argument("--input", type=Path, help="a UTF-8 file with one sentence per line ('-' for stdin)")
    p.add_argument("--output", type=Path, help="write the JSON lines here instead of stdout")
    p.add_argument(
        "--pretokenized",
        action="store_true",
        help='input lines are tokens: a JSON list, {"tokens": [...]}, or space-separated',
    )
    p.add_argument(
        "--word-split",
        choices=("simple", "whitespace"),
        default="simple",
        help="how raw text is split into words: simple (punctuation separate; default) or whitespace",
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--revision", default=None, help="Hub revision of a Hub model")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _read_lines(path: Path) -> list[str]:
    from ner_experiments.errors import DataError

    if str(path) == "-":
        return sys.stdin.read().splitlines()
    if not path.is_file():
        raise DataError(f"no input file at {path}: give a UTF-8 text file with one sentence per line")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text: convert it, e.g. iconv -t UTF-8") from None


def _predict(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ner_experiments.errors import DataError
    from ner_experiments.model import NerModel
    from ner_experiments.publishing.predict import parse_pretokenized_line, predict_texts, predict_tokens

    if args.text and args.input:
        raise DataError("give sentences as arguments or --input FILE, not both")
    lines = _read_lines(args.input) if args.input else list(args.text)
    if not any(line.strip() for line in lines):
        raise DataError(
            'empty input: give text to tag, e.g. ner-predict --model RUN_DIR "সিডনি ক্রিকেট গ্রাউন্ড", or --input FILE'
        )
    if args.batch_size <= 0:
        raise DataError(f"--batch-size={args.batch_size} must be greater than 0, e.g. 32")
    source = str(args.input) if args.input else "argument"
    token_rows = (
        [parse_pretokenized_line(line, i, source) for i, line in enumerate(lines, start=1)]
        if args.pretokenized
        else None
    )
    model = NerModel.load(args.model, device=args.device, revision=args.revision)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    chunk = max(args.batch_size * 8, 256)
    try:
        with tqdm(
            total=len(lines), desc="predict", unit="sent", disable=args.input is None, file=sys.stderr
        ) as bar:
            for start in range(0, len(lines), chunk):
                if token_rows is not None:
                    records = predict_tokens(model, token_rows[start : start + chunk], args.batch_size)
                else:
                    records = predict_texts(
                        model, lines[start : start + chunk], args.word_split, args.batch_size
                    )
                for record in records:
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                bar.update(len(records))
    finally:
        if args.output:
            out.close()
    return 0


def predict_main(argv: Sequence[str] | None = None) -> int:
    """``ner-predict --model PATH_OR_ID TEXT... | --input FILE``."""
    return _main(build_predict_parser(), _predict, argv)


# --- ner-evaluate ----------------------------------------------------------------------------------


def build_evaluate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ner-evaluate",
        description="Score a saved model on a data set split, as training does; writes metrics.json and a "
        "confusion matrix of entity types.",
        epilog="Data set overrides are Hydra style, e.g. dataset=wikiann_bn dataset.path=/data/wikiann "
        "dataset.max_eval_samples=500. Without dataset=..., a run's own data set is used.",
    )
    p.add_argument("overrides", nargs="*", help="Hydra-style config overrides (key=value)")
    p.add_argument("--model", help="a run directory, a model folder, or a Hub id")
    p.add_argument("--split", default="test", choices=("train", "validation", "test"))
    p.add_argument(
        "--show-errors",
        type=int,
        default=0,
        metavar="N",
        help="print N example sentences of each kind of error, gold and predicted entities bracketed",
    )
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("RUN_A", "RUN_B"),
        help="compare two runs (or evaluation folders, or predictions .conll files) on --split from their "
        "predictions files: scores and errors side by side, and a paired bootstrap of the F1 difference",
    )
    p.add_argument(
        "--examples", type=int, default=3, metavar="N", help="--compare: example sentences shown (default 3)"
    )
    p.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="where results go (default: <run_dir>/evaluations/<dataset>-<split>)",
    )
    p.add_argument("--batch-size", type=int, default=None, help="default: trainer.per_device_eval_batch_size")
    p.add_argument("--device", default=None)
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _evaluate(args: argparse.Namespace) -> int:
    from ner_experiments.errors import ConfigError

    if args.show_errors < 0 or args.examples < 0:
        raise ConfigError("--show-errors and --examples take a number of sentences, 0 or more, e.g. 3")
    if args.compare:
        from ner_experiments.publishing.error_report import compare_runs

        if args.model or args.overrides:
            raise ConfigError("--compare reads two runs' predictions files: give no --model or overrides")
        print(compare_runs(*args.compare, split=args.split, examples=args.examples))
        return 0
    if not args.model:
        raise ConfigError("no model given: use --model RUN_DIR (or --compare RUN_A RUN_B)")
    from ner_experiments.publishing.evaluate import evaluate_saved_model

    result = evaluate_saved_model(
        args.model, args.overrides, args.split, args.output_dir, args.batch_size, args.device
    )
    print(result.table)
    if args.show_errors:
        from ner_experiments.predictions_file import read_predictions
        from ner_experiments.publishing.error_report import format_error_examples

        print()
        print(
            format_error_examples(
                read_predictions(result.predictions_file), args.show_errors, result.strict_iob2
            )
        )
    print(
        f"results: {result.output_dir}/metrics.json, predictions: {result.predictions_file}, "
        f"confusion matrix: {result.output_dir}/confusion_matrix.png"
    )
    return 0


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    """``ner-evaluate --model PATH_OR_ID [--split test] [dataset=... overrides]``."""
    return _main(build_evaluate_parser(), _evaluate, argv)
