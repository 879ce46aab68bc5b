"""Dropout on CPU with a quarter of the random draws: four 16-bit numbers from every 64-bit draw.

torch's CPU dropout draws one Bernoulli sample per element (``bernoulli_``, about 7 ns an element on
2 AVX2 cores): on short WikiANN batches that is ~7% of a MiniLM training step, as much as the whole
AdamW update. :class:`CpuDropout` fills the mask from torch's own generator 64 bits at a time, cuts
every draw into four 16-bit numbers and drops an element where its number is below ``p x 65536``:

- each element is dropped independently with probability ``round(p x 65536) / 65536`` (p = 0.1 drops
  with probability 0.100006) and the rest are scaled by ``1 / (1 - that)``, so the expected output is
  the input, as with torch's dropout;
- the masks come from torch's seeded CPU generator, so a run repeats exactly with the same seed; they
  are not the masks ``bernoulli_`` would have drawn, so a run differs from one with torch's dropout as
  much as a run with another seed does;
- on other devices, and outside training, it is torch's dropout.

Only modules that are exactly ``nn.Dropout`` are swapped (hidden-state and classifier dropout in
BERT-family models). Dropout of attention probabilities happens inside
``scaled_dot_product_attention`` and stays torch's.
"""

from __future__ import annotations

import torch
from torch import nn

RESOLUTION = 1 << 16  # 16-bit numbers: the drop probability is a multiple of 1 / 65536


def drop_threshold(p: float) -> int:
    """How many of the 65,536 16-bit values drop an element: the drop probability is this / 65,536."""
    return min(RESOLUTION, max(0, round(p * RESOLUTION)))


def keep_scale_mask(shape: torch.Size, p: float, dtype: torch.dtype) -> torch.Tensor:
    """A CPU tensor of ``shape`` holding 0 where dropped and ``1 / (1 - drop probability)`` elsewhere."""
    threshold = drop_threshold(p)
    count = shape.numel()
    # random_(min int64, None) fills all 64 bits (a plain random_() leaves the sign bit 0).
    draws = torch.empty((count + 3) // 4, dtype=torch.int64).random_(torch.iinfo(torch.int64).min, None)
    numbers = draws.view(torch.int16)[:count].view(shape)  # uniform over -32768..32767
    keep = numbers >= threshold - RESOLUTION // 2
    return keep.to(dtype).mul_(RESOLUTION / (RESOLUTION - threshold))


def cpu_dropout(x: torch.Tensor, p: float, inplace: bool = False) -> torch.Tensor:
    """Training-mode dropout of a CPU tensor with 16-bit masks (see the module docstring)."""
    threshold = drop_threshold(p)
    if threshold == 0:
        return x
    if threshold == RESOLUTION:
        return x.zero_() if inplace else torch.zeros_like(x)
    mask = keep_scale_mask(x.shape, p, x.dtype)
    return x.mul_(mask) if inplace else x * mask


class CpuDropout(nn.Dropout):
    """``nn.Dropout`` whose training-mode masks on CPU come from :func:`cpu_dropout`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or x.device.type != "cpu":
            return super().forward(x)
        return cpu_dropout(x, self.p, self.inplace)


def use_cpu_dropout(model: nn.Module, enabled: bool = True) -> int:
    """Swap the model's ``nn.Dropout`` modules for :class:`CpuDropout` (or back). Returns how many were swapped."""
    old, new = (nn.Dropout, CpuDropout) if enabled else (CpuDropout, nn.Dropout)
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is old:
                replacement = new(child.p, child.inplace)
                replacement.train(child.training)
                setattr(parent, name, replacement)
                swapped += 1
    return swapped
