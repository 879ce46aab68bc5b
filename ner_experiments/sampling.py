"""Training batches of sentences of about the same length, so little of what the model computes is padding.

``transformers``' ``group_by_length`` sorts mega-batches of at most 50 batches, and fewer on small data
sets (4 mega-batches per epoch): on 300 Bengali news sentences a third of each batch is still padding.
:class:`LengthBucketSampler` sorts buckets of ``bucket_batches`` batches (the whole epoch when it is
smaller), cuts them into batches and shuffles the batches, so batch *order* stays random while each
batch holds sentences of nearly equal length.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

DEFAULT_BUCKET_BATCHES = 100


class LengthBucketSampler(Sampler[int]):
    """Indices whose consecutive runs of ``batch_size`` are batches of near-equal length.

    Each epoch: shuffle all indices; sort each bucket of ``batch_size * bucket_batches`` of them by
    length; cut the buckets into batches; shuffle the full batches and put the one with the longest
    sentence first (an out-of-memory error shows at the first step, not hours in). A short batch, if
    the data does not divide evenly, comes last, so the DataLoader's batch boundaries are ours.
    The order depends only on ``seed`` and the epoch (``set_epoch``), so a resumed run sees the same batches.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 0,
        bucket_batches: int = DEFAULT_BUCKET_BATCHES,
    ) -> None:
        if batch_size < 1 or bucket_batches < 1:
            raise ValueError("batch_size and bucket_batches must be positive")
        self.lengths = [int(n) for n in lengths]
        self.batch_size = batch_size
        self.seed = seed
        self.bucket_batches = bucket_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def batches(self) -> list[list[int]]:
        """This epoch's batches, in the order they are served."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        bucket_size = self.batch_size * self.bucket_batches
        full: list[list[int]] = []
        short: list[list[int]] = []
        for start in range(0, len(order), bucket_size):
            bucket = sorted(order[start : start + bucket_size], key=self.lengths.__getitem__)
            for i in range(0, len(bucket), self.batch_size):
                batch = bucket[i : i + self.batch_size]
                (full if len(batch) == self.batch_size else short).append(batch)
        shuffled = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()]
        if shuffled:
            longest = max(range(len(shuffled)), key=lambda b: self.lengths[shuffled[b][-1]])
            shuffled[0], shuffled[longest] = shuffled[longest], shuffled[0]
        # Only the last bucket can leave a short batch; it must stay at the end to keep batch boundaries.
        return shuffled + short

    def __iter__(self) -> Iterator[int]:
        return iter([i for batch in self.batches() for i in batch])
