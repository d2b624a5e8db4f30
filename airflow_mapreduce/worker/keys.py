"""Where the key ends in a record line, and which part of the key picks the partition.

Records travel through the shuffle as the lines the mapper wrote: the key is the text
before the ``key_fields``-th separator (the whole line when it has fewer fields), the
rest is the value (Hadoop Streaming's rule). Partitioning may use only the first
``partition_fields`` fields of the key; the full key still orders records (secondary sort).
With split points (partitioner.kind total_order) a key's partition is instead its place
among them in the job's key order, so partitions hold consecutive ranges of keys.
"""

from __future__ import annotations

import bisect
import math
import operator
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from airflow_mapreduce.job.dataplane import SortKey
from airflow_mapreduce.plan.tasks import JobRuntime

TAB = b"\t"


class RecordFormat:
    def __init__(
        self,
        separator: bytes = TAB,
        key_fields: int = 1,
        partition_fields: int | None = None,
        num_partitions: int = 1,
        lines_sort_as_keys: bool = False,
        comparator: Sequence[SortKey] = (),
        split_points: Sequence[bytes] | None = None,
    ) -> None:
        self.separator = separator
        # True when sorting whole lines orders them by key: then merges compare lines (in
        # C) instead of calling key_of on each. So for JSON keys: TAB sorts below every
        # byte of their text. Raw bytes may hold anything, so streaming lines may not.
        self.lines_sort_as_keys = lines_sort_as_keys and not comparator
        # How keys order: their bytes, or the comparator's fields (bytes breaking ties).
        self.sort_key: Callable[[bytes], Any] | None = (
            _comparator_key(separator, comparator) if comparator else None
        )
        # What orders record lines (a merge's key function): the key through the
        # comparator; else (one key field) the line's (key, separator, value) split in C,
        # whose order is the key's with ties broken by value.
        self.order_of: Callable[[bytes], Any]
        if self.sort_key is not None:
            sort_key = self.sort_key
            self.order_of = lambda line: sort_key(self.key_of(line))
        elif key_fields == 1:
            self.order_of = operator.methodcaller("partition", separator)
        else:
            self.order_of = self.key_of
        self.key_fields = key_fields
        self.partition_fields = partition_fields if partition_fields != key_fields else None
        self.num_partitions = max(num_partitions, 1)
        if split_points is not None and len(split_points) >= self.num_partitions:
            raise ValueError(
                f"{len(split_points)} split points for {self.num_partitions} partitions; "
                "expected fewer split points than partitions"
            )
        # Total order: the split points as order keys (what key_order makes of a key).
        self.split_orders: list[Any] | None = (
            None if split_points is None else [self.key_order(p) for p in split_points]
        )
        # crc32 of the whole key % num_partitions: what the buffers' fast paths inline.
        self.partitions_by_crc32 = self.partition_fields is None and self.split_orders is None

    @classmethod
    def of(cls, job: JobRuntime) -> RecordFormat:
        if job.codec == "json":  # keys are JSON text: no TAB inside, one field
            return cls(
                num_partitions=job.num_partitions,
                lines_sort_as_keys=True,
                split_points=job.split_points,
            )
        streaming = job.dataplane.streaming
        return cls(
            streaming.separator.encode(),
            streaming.key_fields,
            job.dataplane.partitioner.key_fields,
            job.num_partitions,
            comparator=job.dataplane.comparator.keys,
            split_points=job.split_points,
        )

    def key_order(self, key: bytes) -> Any:
        """What orders keys: the comparator's sort key, or the key's bytes."""
        return key if self.sort_key is None else self.sort_key(key)

    def key_of(self, line: bytes) -> bytes:
        if self.key_fields == 1:
            return line.partition(self.separator)[0]
        return self._fields(line, self.key_fields)[0]

    def split(self, line: bytes) -> tuple[bytes, bytes]:
        if self.key_fields == 1:
            key, _, value = line.partition(self.separator)
            return key, value
        return self._fields(line, self.key_fields)

    def join(self, key: bytes, value: bytes) -> bytes:
        return key + self.separator + value

    def partition_of_key(self, key: bytes) -> int:
        """The partition of a record with this key (only its first partition_fields count).

        Total order: the number of split points at or below the key, so a key equal to a
        split point goes to the partition above it (as Hadoop's TotalOrderPartitioner).
        """
        if self.split_orders is not None:
            return bisect.bisect_right(self.split_orders, self.key_order(key))
        if self.partition_fields is not None:
            key = self._fields(key, self.partition_fields)[0]
        # Stable across processes and machines (never Python's salted hash()).
        return zlib.crc32(key) % self.num_partitions

    def _fields(self, line: bytes, count: int) -> tuple[bytes, bytes]:
        parts = line.split(self.separator, count)
        if len(parts) <= count:
            return line, b""
        return self.separator.join(parts[:count]), parts[count]


def _comparator_key(separator: bytes, fields: Sequence[SortKey]) -> Callable[[bytes], Any]:
    """A sort key for key bytes, like KeyFieldBasedComparator's -k<n>,<n>[n][r] options."""
    specs = [(f.field - 1, f.numeric, f.reverse) for f in fields]

    def sort_key(key: bytes) -> tuple[Any, ...]:
        parts = key.split(separator)
        out: list[Any] = []
        for index, numeric, reverse in specs:
            raw = parts[index] if index < len(parts) else b""
            out.append(_numeric(raw, reverse) if numeric else _text(raw, reverse))
        out.append(key)  # ties: bytes order, so equal keys stay together
        return tuple(out)

    return sort_key


def _numeric(raw: bytes, reverse: bool) -> tuple[int, Any]:
    """Numbers first, by value; then anything else by its bytes (all flipped for reverse)."""
    try:
        number = float(raw)
    except ValueError:
        number = math.nan
    if math.isnan(number):
        return (-1, _text(raw, True)) if reverse else (1, raw)
    return (0, -number if reverse else number)


def _text(raw: bytes, reverse: bool) -> Any:
    # Descending bytes order as an ascending key: each byte flipped, and an end marker
    # above every flipped byte so that "ab" comes before its prefix "a".
    return (*(256 - b for b in raw), 300) if reverse else raw
