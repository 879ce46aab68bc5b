"""Where a training step's time goes: seconds per step against batch width, per precision, and a profile.

    python benchmarks/step_cost.py --model DIR                       # the GPU if there is one, else CPU
    python benchmarks/step_cost.py --model DIR --device cpu --lengths 16,32,64,128 --precisions fp32

One step is what the Trainer does per batch: forward with labels, backward, gradient clipping to 1.0,
fused AdamW, zeroing the gradients, on random token ids (batch x length, no padding). For each
precision it fits ``ms per step = fixed + per_position x (batch x length)``: the fixed part is what no
removal of padding can save (kernel launches, Python, the optimizer over all parameters), the
per-position part is what padding and precision change. Then it profiles a few steps at
``--profile-length`` and prints the operators that took the most time.

Precisions: ``fp32`` (the tutorial's recipe: full fp32, no TF32), ``tf32`` (fp32 weights, TF32
matmuls), ``bf16`` (bf16 autocast with TF32 matmuls, what ``precision=auto`` gives on Ampere+ GPUs
and on CPUs with AVX512-BF16/AMX).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import AutoModelForTokenClassification


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

    def batch(self, rows: int, length: int) -> dict[str, torch.Tensor]:
        ids = torch.randint(1000, min(self.vocab, 30000), (rows, length), device=self.device)
        return {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "labels": torch.randint(0, self.num_labels, (rows, length), device=self.device),
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


PRECISIONS = {"fp32": (False, None), "tf32": (True, None), "bf16": (True, torch.bfloat16)}


def time_steps(runner: StepRunner, rows: int, length: int, precision: str, warmup: int, steps: int) -> float:
    tf32, autocast = PRECISIONS[precision]
    set_tf32(tf32)
    batch = runner.batch(rows, length)
    for _ in range(warmup):
        runner.step(batch, autocast)
    synchronize(runner.device)
    start = time.perf_counter()
    for _ in range(steps):
        runner.step(batch, autocast)
    synchronize(runner.device)
    return (time.perf_counter() - start) / steps * 1000


def new_shape_cost(
    runner: StepRunner, rows: int, widths: list[int], precision: str, cudnn_attention: bool
) -> list[dict]:
    """The first step at a batch shape not seen before, against the next step at that shape.

    Length-grouped batches bring a new (rows, width) shape every few steps; anything built per shape
    (cuDNN attention's execution plans) is paid again each time.
    """
    tf32, autocast = PRECISIONS[precision]
    set_tf32(tf32)
    if runner.device.type == "cuda":
        torch.backends.cuda.enable_cudnn_sdp(cudnn_attention)
    out = []
    for width in widths:
        batch = runner.batch(rows, width)
        ms = []
        for _ in range(2):
            synchronize(runner.device)
            start = time.perf_counter()
            runner.step(batch, autocast)
            synchronize(runner.device)
            ms.append((time.perf_counter() - start) * 1000)
        out.append({"rows": rows, "width": width, "first_ms": round(ms[0], 1), "next_ms": round(ms[1], 1)})
    torch.backends.cuda.enable_cudnn_sdp(True)
    return out


def fit_line(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least squares ``ms = fixed + per_position x positions``."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    return my - slope * mx, slope


def profile_steps(runner: StepRunner, rows: int, length: int, precision: str, steps: int, top: int) -> dict:
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    tf32, autocast = PRECISIONS[precision]
    set_tf32(tf32)
    batch = runner.batch(rows, length)
    for _ in range(3):
        runner.step(batch, autocast)
    synchronize(runner.device)
    activities = [ProfilerActivity.CPU]
    if runner.device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        for _ in range(steps):
            runner.step(batch, autocast)
        synchronize(runner.device)
    wall_ms = (time.perf_counter() - start) / steps * 1000
    events = prof.key_averages()
    on_gpu = runner.device.type == "cuda"

    def table(selected, key: str) -> list[dict]:
        return [
            {
                "op": e.key,
                "calls_per_step": round(e.count / steps, 1),
                "ms_per_step": round(getattr(e, key) / 1000 / steps, 3),
            }
            for e in sorted(selected, key=lambda e: getattr(e, key), reverse=True)[:top]
        ]

    host = [e for e in events if e.device_type == DeviceType.CPU]
    kernels = [e for e in events if e.device_type == DeviceType.CUDA]
    launches = sum(e.count for e in host if "LaunchKernel" in e.key)
    return {
        "rows": rows,
        "length": length,
        "precision": precision,
        "wall_ms_per_step_profiled": round(wall_ms, 2),
        "gpu_busy_ms_per_step": round(sum(e.self_device_time_total for e in kernels) / 1000 / steps, 2)
        if on_gpu
        else None,
        "kernel_launches_per_step": round(launches / steps, 1) if on_gpu else None,
        "top_host_ops": table(host, "self_cpu_time_total"),
        "top_gpu_kernels": table(kernels, "self_device_time_total") if on_gpu else [],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model folder")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--rows", type=int, default=16, help="sentences per batch (the recipe's 16)")
    p.add_argument("--lengths", default="16,32,64,128,256,512", help="batch widths in pieces")
    p.add_argument("--precisions", default=None, help="default: fp32,tf32,bf16 on a GPU, fp32 on CPU")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--profile-length", type=int, default=32, help="0: no profile")
    p.add_argument("--profile-steps", type=int, default=5)
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--num-labels", type=int, default=7)
    p.add_argument(
        "--new-shape-widths",
        default="",
        help="e.g. 24,40,56,72: time the first step at each unseen width, cuDNN attention on and off (GPU)",
    )
    p.add_argument("--out", type=Path, default=None, help="write the measurements here (JSON)")
    args = p.parse_args()

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    precisions = (args.precisions or ("fp32,tf32,bf16" if device.type == "cuda" else "fp32")).split(",")
    unknown = [x for x in precisions if x not in PRECISIONS]
    if unknown:
        raise SystemExit(f"unknown --precisions {unknown}; choose from {', '.join(PRECISIONS)}")
    lengths = [int(x) for x in args.lengths.split(",")]
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
    result["ms_per_step"] = {}
    result["fit"] = {}
    print(
        "| precision | "
        + " | ".join(f"{n} x {length}" for n in [args.rows] for length in lengths)
        + " | fixed ms | ms per 1k positions |"
    )
    print("|---" * (len(lengths) + 3) + "|")
    for precision in precisions:
        times = [time_steps(runner, args.rows, n, precision, args.warmup, args.steps) for n in lengths]
        fixed, slope = fit_line([(args.rows * n, t) for n, t in zip(lengths, times, strict=True)])
        result["ms_per_step"][precision] = {str(n): round(t, 2) for n, t in zip(lengths, times, strict=True)}
        result["fit"][precision] = {
            "fixed_ms": round(fixed, 2),
            "ms_per_1k_positions": round(slope * 1000, 3),
        }
        cells = " | ".join(f"{t:.1f}" for t in times)
        print(f"| {precision} | {cells} | {fixed:.1f} | {slope * 1000:.2f} |", flush=True)
    widths = [int(x) for x in args.new_shape_widths.split(",") if x]
    if widths:
        result["new_shape_cost"] = {}
        attention = (True, False) if device.type == "cuda" else (False,)
        for precision in precisions:
            for i, cudnn in enumerate(attention):
                # rows - i: shapes neither setting has seen
                rows = new_shape_cost(runner, args.rows - i, widths, precision, cudnn)
                label = f"{precision}, cuDNN attention {'on' if cudnn else 'off'}"
                result["new_shape_cost"][label] = rows
                cells = ", ".join(f"{r['width']}: {r['first_ms']:.0f}/{r['next_ms']:.0f}" for r in rows)
                print(f"new shapes ({label}), width: first/next step ms: {cells}", flush=True)
    if args.profile_length:
        result["profiles"] = []
        for precision in precisions:
            prof = profile_steps(
                runner, args.rows, args.profile_length, precision, args.profile_steps, args.top
            )
            result["profiles"].append(prof)
            print(
                f"\nprofile {precision}, {args.rows} x {args.profile_length}: {prof['wall_ms_per_step_profiled']} ms "
                f"per step (profiled), GPU busy {prof['gpu_busy_ms_per_step']} ms, "
                f"{prof['kernel_launches_per_step']} kernel launches per step"
            )
            for title in ("top_host_ops", "top_gpu_kernels"):
                if prof[title]:
                    print(f"  {title.replace('_', ' ')} (ms per step, calls per step):")
                for row in prof[title]:
                    print(f"  {row['ms_per_step']:8.3f} ms  {row['calls_per_step']:7.1f}  {row['op'][:90]}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
