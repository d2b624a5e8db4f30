"""The sort buffers for streaming commands' output: LineBuffer groups record lines by key
bytes; PresortedLineBuffer keeps lines that mostly arrive in key order as they come."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

from airflow_mapreduce.worker.keys import RecordFormat
from airflow_mapreduce.worker.spill import MapOutputBuffer

# Estimated bytes a held value costs: its list slot, and (unless it is one of the
# single-byte objects Python shares, like the 1 of a word count) its bytes object.
SLOT = 9
BYTES_HEADER = 40
# ... and a new key: its bytes object, dict entry and a fresh list.
KEY_OVERHEAD = 176

Combine = Callable[[list[bytes]], list[bytes]]


class LineBuffer(MapOutputBuffer):
    """Lines are split once into key and value; only the values are held, per key.

    With one key field a value is the text after the separator (None for a line without
    one: it is rebuilt as it was); with more, it is the rest of the line after the key,
    separator included. Lines are rebuilt exactly when they are spilled.
    """

    def __init__(
        self,
        fmt: RecordFormat,
        budget: int,
        combine: Combine | None = None,
        spill_dir: str | None = None,
    ) -> None:
        super().__init__(fmt, budget, spill_dir)
        self.combine = combine
        self._groups: dict[bytes, list[bytes | None]] = {}

    def add_lines(self, lines: list[bytes]) -> None:
        if not lines:
            return
        groups = self._groups
        get = groups.get
        new_keys = 0
        if self.fmt.key_fields == 1:
            sep = self.fmt.separator
            # Values of 0 or 1 byte are objects Python shares (the 1 of a word count) and
            # cost only their slot; longer ones are counted exactly, not sampled.
            long_values: list[bytes] = []
            keep = long_values.append
            for line in lines:
                key, found, value = line.partition(sep)
                if len(value) > 1:
                    keep(value)
                held = get(key)
                if held is None:
                    groups[key] = [value if found else None]
                    new_keys += len(key) + KEY_OVERHEAD
                else:
                    held.append(value if found else None)
            value_bytes = sum(map(len, long_values)) + BYTES_HEADER * len(long_values)
        else:
            key_of = self.fmt.key_of
            for line in lines:
                key = key_of(line)
                held = get(key)
                if held is None:
                    groups[key] = [line[len(key) :]]
                    new_keys += len(key) + KEY_OVERHEAD
                else:
                    held.append(line[len(key) :])
            # the rest of each line after its key (an upper bound: keys included)
            value_bytes = sum(map(len, lines)) + BYTES_HEADER * len(lines)
        self.records += len(lines)
        self.used += new_keys + SLOT * len(lines) + value_bytes
        if self.used > self.budget:
            self.spill()

    def _drain(self) -> list[list[bytes]]:
        groups, self._groups = self._groups, {}
        fmt = self.fmt
        out: list[list[bytes]] = [[] for _ in range(fmt.num_partitions)]
        pop, sep, n = groups.pop, fmt.separator, fmt.num_partitions
        keys = sorted(groups, key=fmt.sort_key)
        if fmt.partitions_by_crc32:  # the common case, inlined: crc32 of the key
            crc32 = zlib.crc32
            buckets = [out[crc32(key) % n] for key in keys]
        else:
            buckets = [out[fmt.partition_of_key(key)] for key in keys]
        if fmt.key_fields != 1:  # held values are the rest of the line after the key
            for key, bucket in zip(keys, buckets, strict=True):
                bucket.extend(map(key.__add__, pop(key)))  # type: ignore[arg-type]
        else:
            for key, bucket in zip(keys, buckets, strict=True):
                values = pop(key)
                if len(values) == 1:  # most keys, for a mapper that combines
                    value = values[0]
                    bucket.append(key if value is None else key + sep + value)
                elif None in values:  # lines without a separator come back as they were
                    prefix = key + sep
                    bucket.extend([key if v is None else prefix + v for v in values])
                else:
                    bucket.extend(map((key + sep).__add__, values))  # type: ignore[arg-type]
        if self.combine is not None:
            for partition, lines in enumerate(out):
                if lines:
                    out[partition] = self._combined(lines)
        return out

    def _combined(self, lines: list[bytes]) -> list[bytes]:
        assert self.combine is not None
        self.combine_input += len(lines)
        combined = self.combine(lines)
        self.combine_output += len(combined)
        combined.sort(key=self.fmt.order_of)  # a command may emit in any order; stable
        return combined


class PresortedLineBuffer(MapOutputBuffer):
    """Lines kept whole, per partition, as they arrive; a partition is sorted by key (stably)
    only if its lines did not arrive in key order.

    For lines that come already in key order, each key about once: a combiner's output
    after sort. Grouping them in a dict as LineBuffer does would cost a dict entry and a
    list per line for nothing (3x the CPU here). No combiner: the lines are its output.
    """

    def __init__(self, fmt: RecordFormat, budget: int, spill_dir: str | None = None) -> None:
        super().__init__(fmt, budget, spill_dir)
        self._parts: list[list[bytes]] = [[] for _ in range(fmt.num_partitions)]
        self._last: list[Any] = [None] * fmt.num_partitions  # the last order key seen
        self._unordered = [False] * fmt.num_partitions

    def add_lines(self, lines: list[bytes]) -> None:
        if not lines:
            return
        fmt, parts, last, unordered = self.fmt, self._parts, self._last, self._unordered
        n = fmt.num_partitions
        if fmt.key_fields == 1 and fmt.partitions_by_crc32 and fmt.sort_key is None:
            sep, crc32 = fmt.separator, zlib.crc32  # the common case, inlined
            for line in lines:
                key = line.partition(sep)[0]
                partition = crc32(key) % n
                parts[partition].append(line)
                before = last[partition]
                if before is not None and key < before:
                    unordered[partition] = True
                last[partition] = key
        else:
            key_of, partition_of, sort_key = fmt.key_of, fmt.partition_of_key, fmt.sort_key
            for line in lines:
                key = key_of(line)
                partition = partition_of(key)
                parts[partition].append(line)
                order = key if sort_key is None else sort_key(key)
                before = last[partition]
                if before is not None and order < before:
                    unordered[partition] = True
                last[partition] = order
        self.records += len(lines)
        self.used += sum(map(len, lines)) + (BYTES_HEADER + SLOT) * len(lines)
        if self.used > self.budget:
            self.spill()

    def _drain(self) -> list[list[bytes]]:
        parts, unordered = self._parts, self._unordered
        n = self.fmt.num_partitions
        self._parts, self._last, self._unordered = [[] for _ in range(n)], [None] * n, [False] * n
        order_of = self.fmt.key_of if self.fmt.sort_key is None else self.fmt.order_of
        for partition, lines in enumerate(parts):
            if unordered[partition]:
                lines.sort(key=order_of)  # stable: a key's lines keep their order
        return parts
