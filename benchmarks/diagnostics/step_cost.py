"""Time per training step against batch width, per precision: is this machine's step bound by a fixed
cost or by the positions it computes?

    python -m benchmarks.diagnostics.step_cost                            # the benchmark's MiniLM
    python -m benchmarks.diagnostics.step_cost --model DIR --device cpu --precisions fp32,bf16

One step is what the Trainer does per batch: forward with labels, backward, gradient clipping to 1.0,
fused AdamW, zeroing the gradients, on random token ids (batch x width, no padding). For each precision
it fits ``ms per step = fixed + per_position x (batch x width)``. The fixed part (kernel launches,
Python, the optimizer over all parameters) is what no removal of padding can save: where it dominates,
``trainer=fast``'s shorter batches gain little and more sentences per step would. The per-position
part is what padding and precision change: compare the precisions to choose ``trainer.precision``.

Precisions: ``fp32`` (the tutorial's recipe: full fp32, no TF32), ``tf32`` (fp32 weights, TF32
matmuls; on a CPU the same as fp32), ``bf16`` (bf16 autocast, with TF32 matmuls on a GPU).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import AutoModelForTokenClassification

PRECISIONS = {"fp32": (False, None), "tf32": (True, None), "bf16": (True, torch.bfloat16)}


def set_tf32(on: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepRunner:
    """One model and optimizer; ``step`` runs one training step the way the Trainer does."""

    def __init__(self, model_dir: str, device: torch.device, num_labels: int, seed: int) -> None:
        torch.manual_seed(seed)
        self.device = device
        self.model = AutoModelForTokenClassification.from_pretrained(
            model_dir, num_labels=num_labels, dtype=torch.float32
        ).to(device)
        self.model.train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=2e-5, weight_decay=0.01, fused=True)
        self.vocab = self.model.config.vocab_size
        self.num_labels = num_labels

    def batch(self, rows: int, width: int) -> dict[str, torch.Tensor]:
        ids = torch.randint(1000, min(self.vocab, 30000), (rows, width), device=self.device)
        return {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "labels": torch.randint(0, self.num_labels, (rows, width), device=self.device),
        }

    def step(self, batch: dict[str, torch.Tensor], autocast: torch.dtype | None) -> None:
        if autocast is None:
            loss = self.model(**batch).loss
        else:
            with torch.autocast(device_type=self.device.type, dtype=autocast):
                loss = self.model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def time_steps(runner: StepRunner, rows: int, width: int, precision: str, warmup: int, steps: int) -> float:
    """Milliseconds per step at one batch shape and precision, after ``warmup`` untimed steps."""
    tf32, autocast = PRECISIONS[precision]
    set_tf32(tf32)
    batch = runner.batch(rows, width)
    for _ in range(warmup):
        runner.step(batch, autocast)
    synchronize(runner.device)
    start = time.perf_counter()
    for _ in range(steps):
        runner.step(batch, autocast)
    synchronize(runner.device)
    return (time.perf_counter() - start) / steps * 1000


def fit_line(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least squares ``ms = fixed + per_position x positions``; returns (fixed, per_position)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    return my - slope * mx, slope


def default_precisions(device: torch.device) -> str:
    """All three on a GPU; on a CPU bf16 only where it runs natively (elsewhere it is emulated, and slow)."""
    if device.type == "cuda":
        return "fp32,tf32,bf16"
    from ner_experiments.hardware import cpu_has_fast_bf16

    return "fp32,bf16" if cpu_has_fast_bf16() else "fp32"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model folder (default: the benchmark's MiniLM)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--rows", type=int, default=16, help="sentences per batch (the recipe's 16)")
    p.add_argument("--widths", default="16,32,64,128,256,512", help="batch widths in pieces")
    p.add_argument(
        "--precisions",
        default=None,
        help="default: fp32,tf32,bf16 on a GPU; fp32 on a CPU (+ bf16 with AVX512-BF16/AMX)",
    )
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--num-labels", type=int, default=7)
    p.add_argument("--out", type=Path, default=None, help="also write the measurements here (JSON)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    precisions = (args.precisions or default_precisions(device)).split(",")
    unknown = [x for x in precisions if x not in PRECISIONS]
    if unknown:
        raise SystemExit(
            f"step_cost: error: unknown --precisions {unknown}; choose from {', '.join(PRECISIONS)}"
        )
    if args.model is None:
        from benchmarks.run_benchmark import default_model

        args.model = default_model()
    widths = [int(x) for x in args.widths.split(",")]
    runner = StepRunner(args.model, device, args.num_labels, seed=0)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    params = sum(p.numel() for p in runner.model.parameters())
    print(
        f"{args.model}: {params / 1e6:.0f}M parameters on {name}, torch {torch.__version__}, batch {args.rows}"
    )
    result: dict = {"model": args.model, "device": name, "torch": torch.__version__, "rows": args.rows}
    result["ms_per_step"], result["fit"] = {}, {}
    print(
        f"| precision | {' | '.join(f'{args.rows} x {w}' for w in widths)} | fixed ms | ms per 1k positions |"
    )
    print("|---" * (len(widths) + 3) + "|")
    for precision in precisions:
        times = [time_steps(runner, args.rows, w, precision, args.warmup, args.steps) for w in widths]
        fixed, slope = fit_line([(args.rows * w, t) for w, t in zip(widths, times, strict=True)])
        result["ms_per_step"][precision] = {str(w): round(t, 2) for w, t in zip(widths, times, strict=True)}
        result["fit"][precision] = {
            "fixed_ms": round(fixed, 2),
            "ms_per_1k_positions": round(slope * 1000, 3),
        }
        print(f"| {precision} | {' | '.join(f'{t:.1f}' for t in times)} | {fixed:.1f} | {slope * 1000:.2f} |")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
