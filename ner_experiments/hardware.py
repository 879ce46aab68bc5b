"""What the run is computing on, and which precision that hardware supports."""

from __future__ import annotations

import os
import platform
from functools import lru_cache

import torch


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_fast_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matmuls run natively instead of being emulated."""
    flags = cpu_flags()
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def runs_on_gpu(use_cpu: bool = False) -> bool:
    """Whether training runs on a GPU: one is present and ``trainer.use_cpu`` does not force the CPU."""
    return torch.cuda.is_available() and not use_cpu


def resolve_precision(requested: str, use_cpu: bool = False) -> str:
    """``auto`` → bf16 autocast on CPUs that run bf16 natively (AVX512-BF16/AMX), else fp32.

    On a GPU ``auto`` is fp32 with TF32 matmuls (:func:`configure_torch_for_speed` turns TF32 on): at
    the tutorial's small batches a step is bound by kernel launches, and bf16 autocast only adds casts.
    Ask for ``precision=bf16`` for bigger batches, longer windows or bigger models.
    """
    if requested != "auto":
        return requested
    if runs_on_gpu(use_cpu):
        return "fp32"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def describe_hardware() -> str:
    if torch.cuda.is_available():
        names = {torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())}
        return f"{torch.cuda.device_count()} x {', '.join(sorted(names))}"
    return f"CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def configure_torch_for_speed(use_cpu: bool = False) -> dict[str, object]:
    """TF32 matmuls and no cuDNN attention on GPUs, and CPU threads split between the processes of this machine.

    TF32 keeps fp32 weights and only rounds matmul inputs (10-bit mantissa): the usual setting for
    fine-tuning. On CPU, torch uses one thread per core by default; under ``torchrun`` with several
    processes that oversubscribes the cores, so each process gets its share unless ``OMP_NUM_THREADS`` is set.
    """
    settings: dict[str, object] = {}
    if runs_on_gpu(use_cpu):
        if torch.cuda.get_device_capability()[0] >= 8:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            settings["tf32"] = True
        # cuDNN attention builds an execution plan for every new (batch, length) shape, and length-grouped
        # batches bring dozens of shapes; flash / memory-efficient attention need no per-shape plan.
        torch.backends.cuda.enable_cudnn_sdp(False)
        settings["cudnn_attention"] = False
    elif "OMP_NUM_THREADS" not in os.environ:
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cores = os.cpu_count() or 1
        local_procs = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        threads = max(1, min(torch.get_num_threads(), cores // local_procs))
        torch.set_num_threads(threads)
        settings["cpu_threads"] = threads
    return settings


def effective_pad_to_multiple_of(requested: int | None, use_cpu: bool = False) -> int | None:
    """Padding to a multiple of 8 feeds GPU tensor cores; on a CPU it only adds padding, so it is dropped."""
    if requested and runs_on_gpu(use_cpu):
        return requested
    return None
