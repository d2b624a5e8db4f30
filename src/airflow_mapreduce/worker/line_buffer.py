"""The sort buffer for streaming commands' output: record lines grouped by key bytes."""

from __future__ import annotations

import zlib
from collections.abc import Callable

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
        if fmt.partition_fields is None:  # the common case, inlined: crc32 of the key
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
