"""The map-side sort buffer: bounded memory, sorted runs spilled to local disk, then merged.

Like Hadoop's MapOutputBuffer: records collect until the buffer's budget is used up; then
each partition is sorted (and combined) and written to a local spill file. At the end
every partition is the k-way merge of its spills and what is left in memory, streamed to
its output without loading it whole.

Unlike Hadoop, records are grouped by key in a dict as they arrive rather than kept in
one array: a "sort" then orders the distinct keys only, and a combiner is called on each
group directly. Most map outputs repeat keys (word counts: 18 M records, 2 M distinct),
so this is where the sort and the combiner get cheap. Two kinds share the machinery:
`LineBuffer` (streaming commands' output lines) and `PairBuffer` (Python callables'
pairs, kept as Python objects until they are spilled).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from typing import IO, Self

from airflow_mapreduce.worker.keys import RecordFormat
from airflow_mapreduce.worker.merge import merge_blocks
from airflow_mapreduce.worker.records import iter_stream_blocks, merge_read_block

WRITE_LINES = 4096


class MapOutputBuffer(ABC):
    """Budget, spill files and the final merge; subclasses group and drain records."""

    def __init__(self, fmt: RecordFormat, budget: int, spill_dir: str | None = None) -> None:
        self.fmt = fmt
        self.budget = budget
        self.used = 0  # estimated bytes held (objects, not just payload)
        self.records = 0
        self.spills = 0
        self.combine_input = 0
        self.combine_output = 0
        self._spill_dir = spill_dir
        self._dir: str | None = None  # made at the first spill: most tasks never spill
        self._runs: list[list[str]] = [[] for _ in range(fmt.num_partitions)]

    @abstractmethod
    def _drain(self) -> list[list[bytes]]:
        """Every partition's held records as key-sorted (combined) lines; empties the buffer."""

    def spill(self) -> None:
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="amr-spill-", dir=self._spill_dir)
        for partition, lines in enumerate(self._drain()):
            if not lines:
                continue
            path = os.path.join(self._dir, f"spill-{self.spills:05d}-{partition:05d}")
            with open(path, "wb") as f:
                write_lines(f, lines)
            self._runs[partition].append(path)
        self.spills += 1
        self.used = 0

    def partitions(self) -> Iterator[tuple[int, Iterator[bytes]]]:
        """(partition, its records in key order) for every partition, spills merged in."""
        in_memory = self._drain()
        for partition, lines in enumerate(in_memory):
            in_memory[partition] = []  # the merge below holds the only reference
            runs = self._runs[partition]
            if not runs:
                yield partition, iter(lines)
                continue
            block = merge_read_block(self.budget, len(runs))
            streams: list[Iterable[list[bytes]]] = [_read_run(path, block) for path in runs]
            streams.append([lines])
            del lines
            key = None if self.fmt.lines_sort_as_keys else self.fmt.order_of
            yield partition, merge_blocks(streams, key)

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _read_run(path: str, block: int) -> Iterator[list[bytes]]:
    with open(path, "rb", buffering=0) as f:
        yield from iter_stream_blocks(f, block)


def write_lines(f: IO[bytes], lines: Iterable[bytes]) -> tuple[int, int]:
    """Write lines with LF endings, WRITE_LINES at a time (taken and joined in C); return
    (lines, bytes) written."""
    it = iter(lines)
    records = written = 0
    while chunk := list(itertools.islice(it, WRITE_LINES)):
        records += len(chunk)
        chunk.append(b"")
        data = b"\n".join(chunk)
        f.write(data)
        written += len(data)
    return records, written
