"""Sweep benchmark: the same seeded lr x epochs search without pruning and with the default pruning.

python -m benchmarks.sweep_benchmark          # 300 train / 150 eval sentences, 12 trials of 2..6 epochs
python -m benchmarks.sweep_benchmark --train-sentences 600 --eval-sentences 300 --trials 16 --epochs 2,8

Each side is one ``train.py -m sweep=lr_epochs`` process (the real sweeper) on the benchmark's MiniLM
and held-out WikiANN-en sentences (as run_benchmark takes them), ``trainer=fast``, and confirms its best
configurations with more seeds (``hydra.sweeper.confirm``). Printed per side: training steps of the
search, wall time, best single-trial validation F1, the confirmed best configuration and its mean ± std;
then the step ratio and whether the target held. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from benchmarks.run_benchmark import DATA_OVERRIDES, ROOT, default_model, describe_machine, run_child

# The target of issue 19: the pruned search trains at most this share of the unpruned search's steps,
# and its confirmed best mean is within this many F1 points of the unpruned one's, or within the seed
# standard deviation of the two confirmed configurations, whichever is larger.
TARGET_STEP_RATIO = 0.40
TARGET_F1_POINTS = 0.5
SIDES = {"unpruned": ["hydra.sweeper.pruner.name=none"], "pruned": []}  # pruned: the preset's default


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-sentences", type=int, default=300)
    p.add_argument("--eval-sentences", type=int, default=150, help="of validation (and test, unused)")
    p.add_argument("--trials", type=int, default=12, help="search trials per side")
    p.add_argument("--epochs", default="2,6", help="LOW,HIGH: trainer.num_train_epochs searched in range")
    p.add_argument("--confirm", default="2,2", help="TOP_K,SEEDS of hydra.sweeper.confirm on both sides")
    p.add_argument("--seed", type=int, default=42, help="of the runs and the sampler, both sides")
    p.add_argument("--model", help="model folder (default: the bench extra's MiniLM); 'tiny': model=tiny")
    p.add_argument("--data-root", default=str(ROOT.parent / "shared/data"), help="holds wikiann/")
    p.add_argument("--out", help="default: benchmarks/results/sweep_<date-time>")
    return p.parse_args(argv)


def _pair(text: str) -> tuple[int, int] | None:
    try:
        low, high = (int(x) for x in text.split(","))
    except ValueError:
        return None
    return low, high


def validate_arguments(args: argparse.Namespace) -> list[str]:
    """Every problem with the command line, each one line; checked before anything runs."""
    problems = []
    if min(args.train_sentences, args.eval_sentences) < 1:
        problems.append("--train-sentences and --eval-sentences must be positive")
    if args.trials < 2:
        problems.append(f"--trials {args.trials}: give at least 2 (pruning compares trials)")
    epochs, confirm = _pair(args.epochs), _pair(args.confirm)
    if epochs is None or not 1 <= epochs[0] <= epochs[1]:
        problems.append(f"--epochs {args.epochs}: give LOW,HIGH with 1 <= LOW <= HIGH, e.g. 2,8")
    if confirm is None or min(confirm) < 1:
        problems.append(f"--confirm {args.confirm}: give TOP_K,SEEDS, both >= 1, e.g. 2,2")
    if args.model not in (None, "tiny") and not Path(args.model).is_dir():
        problems.append(f"--model {args.model}: no such folder")
    if not (Path(args.data_root) / "wikiann").is_dir():
        problems.append(f"--data-root {args.data_root}: it has no folder wikiann/")
    return problems


def side_command(side: str, args: argparse.Namespace, work: Path) -> list[str]:
    """The ``train.py -m`` command of one side: the same search, seed and data; only pruning differs."""
    low, high = _pair(args.epochs)  # type: ignore[misc]
    top_k, seeds = _pair(args.confirm)  # type: ignore[misc]
    data = [o.format(dir=Path(args.data_root) / "wikiann") for o in DATA_OVERRIDES["wikiann"]]
    data += [
        f"dataset.max_train_samples={args.train_sentences}",
        f"dataset.max_eval_samples={args.eval_sentences}",
    ]
    model = ["model=tiny"] if args.model == "tiny" else ["model=local", f"model.name_or_path={args.model}"]
    return [
        sys.executable, "train.py", "-m", "sweep=lr_epochs", *data, *model,
        "trainer=fast", "logger=none", "run_test=false", f"seed={args.seed}",
        f"paths.output_dir={work / side}", f"paths.cache_dir={work / 'cache'}",
        f"hydra.sweep.dir={work / side / 'sweep'}", f"hydra.sweeper.study_name={side}",
        f"hydra.sweeper.n_trials={args.trials}", f"++hydra.sweeper.params.trainer.num_train_epochs='range({low}, {high})'",
        f"hydra.sweeper.confirm.top_k={top_k}", f"hydra.sweeper.confirm.seeds={seeds}",
        "hydra.sweeper.plots=false", *SIDES[side],
    ]  # fmt: skip


def summarize_side(study: Any, best_json: dict[str, Any], child: dict[str, float]) -> dict[str, Any]:
    """What one side cost and found: steps and wall time of its search trials, its best trial, its confirmation."""
    from optuna.trial import TrialState

    from ner_experiments.sweeping.confirmation import is_confirmation

    trials = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    search = [t for t in trials if not is_confirmation(t)]
    confirm = [t for t in trials if is_confirmation(t)]
    complete = [t for t in search if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None

    def steps(ts: list[Any]) -> int:
        return sum(int(t.user_attrs.get("steps_trained") or 0) for t in ts)

    def seconds(ts: list[Any]) -> float:
        return round(sum(t.duration.total_seconds() for t in ts if t.duration), 1)

    confirmed = best_json.get("confirmed") or {}
    return {
        "search_steps": steps(search),
        "search_seconds": seconds(search),
        "confirm_steps": steps(confirm),
        "confirm_seconds": seconds(confirm),
        "process_wall_seconds": child["wall_seconds"],
        "load_average": child["load_average"],
        "trials": {
            s.name: sum(t.state == s for t in search) for s in (TrialState.COMPLETE, TrialState.PRUNED)
        },
        "search_trials": [
            {
                "number": t.number,
                "state": t.state.name,
                "params": t.params,
                "steps_trained": t.user_attrs.get("steps_trained"),
                "value": t.value,
            }
            for t in search
        ],
        "best_trial": {"number": best.number, "value": best.value, "params": best.params} if best else None,
        "confirmed": {k: confirmed.get(k) for k in ("params", "mean", "std", "n_seeds", "verdict")}
        if confirmed
        else None,
    }


def run_side(side: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import optuna

    (work / side).mkdir(parents=True, exist_ok=True)
    child = run_child(side_command(side, args, work), work / f"{side}.log")
    study = optuna.load_study(study_name=side, storage=f"sqlite:///{work / side / 'optuna' / side}.db")
    best_json = json.loads((work / side / "sweep" / "best.json").read_text())
    return summarize_side(study, best_json, child)


def target_verdict(unpruned: dict[str, Any], pruned: dict[str, Any]) -> dict[str, Any]:
    """The step ratio, the gap of the confirmed means, and whether the target held (and by which criterion)."""
    ratio = pruned["search_steps"] / unpruned["search_steps"] if unpruned["search_steps"] else None
    u, p = unpruned["confirmed"], pruned["confirmed"]
    result: dict[str, Any] = {"step_ratio": round(ratio, 4) if ratio is not None else None}
    if not u or not p or u["mean"] is None or p["mean"] is None:
        result.update(held=False, why="a side has no confirmed configuration")
        return result
    gap = (
        u["mean"] - p["mean"]
    ) * 100  # F1 points the pruned search's confirmed best is below the unpruned one's
    stds = [s * 100 for s in (u["std"], p["std"]) if s is not None]
    seed_std = max(stds) if stds else 0.0
    tolerance, criterion = (
        (seed_std, f"within the seed std ({seed_std:.2f} pt)")
        if seed_std > TARGET_F1_POINTS
        else (TARGET_F1_POINTS, f"within {TARGET_F1_POINTS} F1 point")
    )
    steps_ok = ratio is not None and ratio <= TARGET_STEP_RATIO
    f1_ok = gap <= tolerance
    result.update(
        gap_f1_points=round(gap, 2),
        seed_std_points=round(seed_std, 2),
        tolerance_points=round(tolerance, 2),
        steps_ok=steps_ok,
        f1_ok=f1_ok,
        held=steps_ok and f1_ok,
        why=(
            f"steps {ratio:.1%} of the unpruned search ({'<=' if steps_ok else '>'} {TARGET_STEP_RATIO:.0%}); "
            f"confirmed mean {gap:+.2f} pt below the unpruned one's: {'' if f1_ok else 'NOT '}{criterion}"
        ),
    )
    return result


def _confirmed_text(c: dict[str, Any] | None) -> str:
    if not c or c.get("mean") is None:
        return "-"
    params = ", ".join(
        f"{k.rpartition('.')[2]}={v:.3g}" if isinstance(v, float) else f"{k.rpartition('.')[2]}={v}"
        for k, v in c["params"].items()
    )
    std = f" ± {c['std']:.4f}" if c.get("std") is not None else ""
    return f"{params}: {c['mean']:.4f}{std} (n={c['n_seeds']})"


def format_table(results: dict[str, Any]) -> str:
    u, p, t = results["sides"]["unpruned"], results["sides"]["pruned"], results["target"]

    def best(s: dict[str, Any]) -> str:
        return f"{s['best_trial']['value']:.4f}" if s["best_trial"] else "-"

    rows = [
        ("search: training steps", f"{u['search_steps']:,}", f"{p['search_steps']:,}"),
        ("search: trials COMPLETE / PRUNED", *(f"{s['trials']['COMPLETE']} / {s['trials']['PRUNED']}" for s in (u, p))),
        ("search: trial seconds (sum)", f"{u['search_seconds']:,.0f}", f"{p['search_seconds']:,.0f}"),
        ("best single-trial validation F1", best(u), best(p)),
        ("confirmed best: configuration, mean ± std", _confirmed_text(u["confirmed"]), _confirmed_text(p["confirmed"])),
        ("confirmation: training steps", f"{u['confirm_steps']:,}", f"{p['confirm_steps']:,}"),
        ("whole process (search + confirmation), wall s", f"{u['process_wall_seconds']:,.0f}", f"{p['process_wall_seconds']:,.0f}"),
        ("load average while it ran", f"{u['load_average']:.2f}", f"{p['load_average']:.2f}"),
    ]  # fmt: skip
    lines = [
        "| | no pruning | default pruning |",
        "|---|---|---|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
    ]
    ratio = f"{t['step_ratio']:.1%}" if t["step_ratio"] is not None else "-"
    lines += [
        "",
        f"Step ratio (pruned / unpruned search): {ratio}. Target {'HELD' if t['held'] else 'NOT held'}: {t['why']}.",
    ]
    return "\n".join(lines)


def fail(*problems: str) -> NoReturn:
    print(*(f"sweep_benchmark: error: {problem}" for problem in problems), sep="\n", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_arguments(argv)
    if problems := validate_arguments(args):
        fail(*problems)
    args.model = args.model or default_model()
    out = Path(args.out or ROOT / "benchmarks/results" / datetime.now().strftime("sweep_%Y-%m-%d_%H-%M-%S"))
    out.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python -m benchmarks.sweep_benchmark", *(sys.argv[1:] if argv is None else argv)])
    results: dict[str, Any] = {
        "command": command,
        "machine": describe_machine(),
        "date": datetime.now().isoformat(timespec="minutes"),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "side_commands": {side: side_command(side, args, out)[1:] for side in SIDES},
        "sides": {},
    }
    for side in SIDES:
        results["sides"][side] = run_side(side, args, out)
        (out / "results.json").write_text(json.dumps(results, indent=1))
    results["target"] = target_verdict(results["sides"]["unpruned"], results["sides"]["pruned"])
    (out / "results.json").write_text(json.dumps(results, indent=1))
    table = format_table(results)
    report = f"`{command}` on {results['machine']}, {results['date']}\n\n{table}\n"
    (out / "results.md").write_text(report)
    print("\n" + report)
    print(f"all measurements: {out / 'results.json'}")
    return results


if __name__ == "__main__":
    if not __package__:
        fail("run it from the repository root as python -m benchmarks.sweep_benchmark")
    main()
