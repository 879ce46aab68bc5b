"""Long sentences as overlapping windows of whole words.

A *feature* is what the model sees: at most ``max_length`` pieces with special tokens. A sentence too
long for one feature is split into windows; every word is *owned* by exactly one window, which carries
the word's prediction, so no word is dropped by truncation and none is predicted twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """Words ``[start, end)`` go into one feature; words ``[own_start, own_end)`` are scored from it."""

    start: int
    end: int
    own_start: int
    own_end: int


def plan_windows(piece_counts: Sequence[int], budget: int, stride: int) -> list[Window]:
    """Split a sentence into windows of at most ``budget`` pieces that overlap by about ``stride`` pieces.

    Each word is owned by the window in which it sits furthest from an edge, so it is predicted with
    context on both sides. A single word longer than the budget gets a window of its own (its pieces
    beyond the budget are cut; its first piece, which carries the prediction, is kept).
    """
    n = len(piece_counts)
    if n == 0:
        return [Window(0, 0, 0, 0)]
    if sum(piece_counts) <= budget:
        return [Window(0, n, 0, n)]
    windows: list[Window] = []
    start, own_start = 0, 0

    def fill(first: int) -> int:
        end, used = first, 0
        while end < n and (used + piece_counts[end] <= budget or end == first):
            used += piece_counts[end]
            end += 1
        return end

    while True:
        end = fill(start)
        if end <= own_start:  # the carried context left no room for the next owned word
            start = own_start
            end = fill(start)
        if end >= n:
            windows.append(Window(start, n, own_start, n))
            return windows
        # The next window starts so that it repeats about `stride` pieces of this one.
        next_start, carried = end, 0
        while next_start - 1 > start and carried + piece_counts[next_start - 1] <= stride:
            next_start -= 1
            carried += piece_counts[next_start]
        # Words in the overlap are owned by whichever window they sit further inside.
        own_end = max(own_start + 1, min(end, (next_start + end + 1) // 2))
        windows.append(Window(start, end, own_start, own_end))
        start, own_start = min(next_start, own_end), own_end
