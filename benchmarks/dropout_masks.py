"""torch's CPU dropout against 16-bit dropout masks (``trainer.fast_cpu_dropout``), side by side.

    python benchmarks/dropout_masks.py                          # MiniLM, 2 x 100 steps
    python benchmarks/dropout_masks.py --model /tmp/mbert-sized --warmup 10 --steps 20

Two copies of the same model train in ONE process, step by step in turn on the same real batches
(``step_turns.py``), both as ``trainer=fast`` trains on CPU (row-sparse embedding updates, fused
AdamW): (a) torch's ``nn.Dropout`` (one ``bernoulli_`` draw per element), (b) ``CpuDropout`` (four
16-bit numbers per 64-bit draw). The masks differ, so the copies drift apart as two seeds would. It
prints ms per step, the ratio, and the share of elements (b) dropped.
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

from ner_experiments.dropout_masks import cpu_dropout, use_cpu_dropout  # noqa: E402
from ner_experiments.embedding_updates import (  # noqa: E402
    RowSparseAdamW,
    clip_grad_norm_with_sparse,
    use_sparse_embedding_gradient,
)


def main() -> None:
    args = parse_arguments(__doc__, warmup=30, steps=100)
    model_dir, tokenizer, batches, base = load_model_and_batches(args)

    turns = {}
    for name in ("torch", "cpu16"):
        model = copy.deepcopy(base)
        if name == "cpu16" and not use_cpu_dropout(model):
            raise SystemExit(f"{model_dir}: the model has no nn.Dropout modules")
        use_sparse_embedding_gradient(model)
        optimizer = RowSparseAdamW(param_groups(model, 0.01), lr=2e-5, fused=True)
        turns[name] = Turn(model, optimizer, clip_grad_norm_with_sparse)
    per_step = time_in_turns(turns, batches, tokenizer.pad_token_id or 0, args.warmup, args.steps, args.seed)

    dropped = (cpu_dropout(torch.ones(1_000_000), base.config.hidden_dropout_prob) == 0).float().mean()
    print_header("dropout_masks.py", sys.argv[1:], model_dir, base, args.warmup, args.steps)
    speedup = print_table(per_step, {"torch": "(a) torch's dropout", "cpu16": "(b) 16-bit masks"})
    print(
        f"\nsteps per second (b)/(a): {speedup:.2f}x; hidden dropout p={base.config.hidden_dropout_prob}: "
        f"(b) dropped {dropped:.4f} of 1,000,000 elements"
    )


if __name__ == "__main__":
    main()
