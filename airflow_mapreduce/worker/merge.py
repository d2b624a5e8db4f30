"""K-way merge of sorted runs, block by block, with the comparisons done in C.

heapq.merge costs a Python generator step per record. Here runs arrive as blocks of
lines: the smallest last line among the current blocks bounds what can go out now
(every run's later lines sort after it), so the lines up to it are cut from each block
with a binary search and put in order with one list.sort(), which merges the already
sorted pieces in C. Memory stays at one block per run.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

Key = Callable[[bytes], Any] | None


class _Run:
    def __init__(self, blocks: Iterator[list[bytes]]) -> None:
        self.blocks = blocks
        self.block: list[bytes] = []
        self.start = 0

    def refill(self) -> bool:
        """Move to the next non-empty block; False when the run is used up."""
        for block in self.blocks:
            if block:
                self.block, self.start = block, 0
                return True
        return False


def merge_blocks(runs: Iterable[Iterable[list[bytes]]], key: Key = None) -> Iterator[bytes]:
    """All lines of the sorted runs (each given as blocks of lines) in order of `key`."""
    return itertools.chain.from_iterable(merge_block_lists(runs, key))


def merge_block_lists(
    runs: Iterable[Iterable[list[bytes]]], key: Key = None
) -> Iterator[list[bytes]]:
    """merge_blocks, as blocks of lines: a consumer that works on whole blocks takes them
    without a step per line."""
    live = [run for run in (_Run(iter(blocks)) for blocks in runs) if run.refill()]
    while len(live) > 1:
        lasts = [run.block[-1] if key is None else key(run.block[-1]) for run in live]
        bound = min(lasts)
        lowest = lasts.index(bound)
        taken: list[bytes] = []
        for index, run in enumerate(live):
            # The run that set the bound goes out whole: progress even when a run is
            # sorted by record key but not by `key` within a key (map runs' values).
            cut = (
                len(run.block)
                if index == lowest
                else bisect.bisect_right(run.block, bound, run.start, key=key)
            )
            taken += run.block[run.start : cut]
            run.start = cut
        taken.sort(key=key)
        yield taken
        live = [run for run in live if run.start < len(run.block) or run.refill()]
    for run in live:  # the last run left: no more comparing
        yield run.block[run.start :]
        yield from run.blocks
