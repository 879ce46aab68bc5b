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

import copy
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from step_turns import (  # noqa: E402  (this script's folder is on sys.path)
    Turn,
    load_model_and_batches,
    param_groups,
    parse_arguments,
    print_header,
    print_table,
    time_in_turns,
)

from ner_experiments.embedding_updates import (  # noqa: E402
    RowSparseAdamW,
    clip_grad_norm_with_sparse,
    use_sparse_embedding_gradient,
)


def main() -> None:
    args = parse_arguments(__doc__, warmup=100, steps=60)
    model_dir, tokenizer, batches, base = load_model_and_batches(args)

    dense = copy.deepcopy(base)
    sparse = copy.deepcopy(base)
    if not use_sparse_embedding_gradient(sparse):
        raise SystemExit(
            f"{model_dir}: its input embedding cannot take sparse gradients (tied or not nn.Embedding)"
        )
    turns = {
        "dense": Turn(dense, torch.optim.AdamW(param_groups(dense, 0.01), lr=2e-5, fused=True)),
        "sparse": Turn(
            sparse,
            RowSparseAdamW(param_groups(sparse, 0.01), lr=2e-5, fused=True),
            clip_grad_norm_with_sparse,
        ),
    }
    per_step = time_in_turns(turns, batches, tokenizer.pad_token_id or 0, args.warmup, args.steps, args.seed)

    embedding = sparse.get_input_embeddings().weight
    rows_in_use = int(next(iter(turns["sparse"].optimizer._rows_in_use.values())).sum())
    largest_difference = max(
        (a - b).abs().max().item() for a, b in zip(dense.parameters(), sparse.parameters(), strict=True)
    )
    print_header("embedding_updates.py", sys.argv[1:], model_dir, base, args.warmup, args.steps)
    speedup = print_table(
        per_step, {"dense": "(a) dense (the Trainer's)", "sparse": "(b) row-sparse embedding"}
    )
    print(f"\nsteps per second (b)/(a): {speedup:.2f}x; rows with AdamW moments at the end: {rows_in_use:,} of "
          f"{embedding.shape[0]:,}; largest parameter difference (a)-(b): {largest_difference:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
