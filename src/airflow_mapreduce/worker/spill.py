"""The map-side sort buffer: bounded memory, sorted runs spilled to local disk, then merged.

Like Hadoop's MapOutputBuffer: records collect per partition until the buffer's budget
is used up; then each partition is sorted (and combined) and written to a local spill
file. At the end every partition is the k-way merge of its spills and what is left in
memory, streamed to its output without loading it whole.
"""

from __future__ import annotations

import heapq
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO

from airflow_mapreduce.worker.keys import RecordFormat
from airflow_mapreduce.worker.records import iter_stream_lines, merge_read_block

# Cost of a line in the buffer beyond its bytes: the bytes object header and list slot.
LINE_OVERHEAD = 56
WRITE_BATCH = 1 << 16

Combine = Callable[[list[bytes]], list[bytes]]


class SortBuffer:
    def __init__(
        self,
        fmt: RecordFormat,
        budget: int,
        combine: Combine | None = None,
        spill_dir: str | None = None,
    ) -> None:
        self.fmt = fmt
        self.budget = budget
        self.combine = combine
        self.buckets: list[list[bytes]] = [[] for _ in range(fmt.num_partitions)]
        self.used = 0
        self.records = 0
        self.spills = 0
        self.line_ordered = True  # every line so far sorts like its key
        self._dir = tempfile.mkdtemp(prefix="amr-spill-", dir=spill_dir)
        self._runs: list[list[str]] = [[] for _ in range(fmt.num_partitions)]

    def add_lines(self, lines: list[bytes], block: bytes | None = None) -> None:
        """Add record lines; `block` (the bytes they came from) enables the fast sort."""
        if self.line_ordered:
            data = block if block is not None else b"\n".join(lines)
            self.line_ordered = self.fmt.line_order_is_key_order(data)
        self.used += self.fmt.partition_lines(lines, self.buckets) + LINE_OVERHEAD * len(lines)
        self.records += len(lines)
        if self.used > self.budget:
            self.spill()

    def add(self, partition: int, line: bytes) -> None:
        """One line of a known partition (callers that already hashed the key)."""
        self.buckets[partition].append(line)
        self.records += 1
        self.used += len(line) + LINE_OVERHEAD
        if self.used > self.budget:
            self.spill()

    def spill(self) -> None:
        for partition, bucket in enumerate(self.buckets):
            if not bucket:
                continue
            self.buckets[partition] = []
            lines = self._sorted(bucket)
            del bucket
            path = os.path.join(self._dir, f"spill-{self.spills:05d}-{partition:05d}")
            with open(path, "wb") as f:
                write_lines(f, lines)
            del lines
            self._runs[partition].append(path)
        self.spills += 1
        self.used = 0

    def partitions(self) -> Iterator[tuple[int, Iterator[bytes]]]:
        """(partition, its records in key order) for every partition, spills merged in."""
        for partition in range(len(self.buckets)):
            runs = self._runs[partition]
            bucket, self.buckets[partition] = self.buckets[partition], []
            in_memory = self._sorted(bucket) if bucket else []
            del bucket
            if not runs:
                yield partition, iter(in_memory)
                continue
            block = merge_read_block(self.budget, len(runs))
            streams: list[Iterable[bytes]] = [_read_run(path, block) for path in runs]
            streams.append(in_memory)
            key = None if self.line_ordered else self.fmt.key_of
            yield partition, heapq.merge(*streams, key=key)

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def _sorted(self, bucket: list[bytes]) -> list[bytes]:
        key = None if self.line_ordered else self.fmt.key_of
        bucket.sort(key=key)
        if self.combine is None:
            return bucket
        combined = self.combine(bucket)
        if self.line_ordered:  # a combiner may emit bytes the mapper did not
            self.line_ordered = self.fmt.line_order_is_key_order(b"\n".join(combined))
        combined.sort(key=None if self.line_ordered else self.fmt.key_of)
        return combined


def _read_run(path: str, block: int) -> Iterator[bytes]:
    with open(path, "rb", buffering=0) as f:
        yield from iter_stream_lines(f, block)


def write_lines(f: IO[bytes], lines: Iterable[bytes]) -> int:
    """Write lines with LF endings in ~64 KiB batches; return the bytes written."""
    write = f.write
    batch: list[bytes] = []
    size = written = 0
    for line in lines:
        batch.append(line)
        size += len(line) + 1
        if size >= WRITE_BATCH:
            batch.append(b"")
            write(b"\n".join(batch))
            written += size
            batch.clear()
            size = 0
    if batch:
        batch.append(b"")
        write(b"\n".join(batch))
        written += size
    return written
