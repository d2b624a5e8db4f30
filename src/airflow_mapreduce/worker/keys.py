"""Where the key ends in a record line, and which part of the key picks the partition.

Records travel through the shuffle as the lines the mapper wrote: the key is the text
before the ``key_fields``-th separator (the whole line when it has fewer fields), the
rest is the value (Hadoop Streaming's rule). Partitioning may use only the first
``partition_fields`` fields of the key; the full key still orders records (secondary sort).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from airflow_mapreduce.plan.tasks import JobRuntime

TAB = b"\t"


class RecordFormat:
    def __init__(
        self,
        separator: bytes = TAB,
        key_fields: int = 1,
        partition_fields: int | None = None,
        num_partitions: int = 1,
    ) -> None:
        self.separator = separator
        self.key_fields = key_fields
        self.partition_fields = partition_fields if partition_fields != key_fields else None
        self.num_partitions = max(num_partitions, 1)
        # Line order equals key order when no byte in a key sorts below the separator
        # (the value then only breaks ties). Checked per block, in C, by deleting the rest.
        self._above_separator = (
            bytes(range(separator[0], 256)) + b"\n" if len(separator) == 1 else None
        )

    @classmethod
    def of(cls, job: JobRuntime) -> RecordFormat:
        if job.codec == "json":  # keys are JSON text: no TAB inside, one field
            return cls(num_partitions=job.num_partitions)
        streaming = job.dataplane.streaming
        return cls(
            streaming.separator.encode(),
            streaming.key_fields,
            job.dataplane.partitioner.key_fields,
            job.num_partitions,
        )

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

    def partition_of(self, line: bytes) -> int:
        fields = self.partition_fields
        key = self.key_of(line) if fields is None else self._fields(line, fields)[0]
        # Stable across processes and machines (never Python's salted hash()).
        return zlib.crc32(key) % self.num_partitions

    def partition_lines(self, lines: Iterable[bytes], buckets: list[list[bytes]]) -> int:
        """Append each line to its partition's bucket; return the bytes added."""
        added = 0
        crc32 = zlib.crc32
        n = self.num_partitions
        if self.key_fields == 1 and self.partition_fields is None:
            sep = self.separator
            for line in lines:
                buckets[crc32(line.partition(sep)[0]) % n].append(line)
                added += len(line)
        else:
            partition_of = self.partition_of
            for line in lines:
                buckets[partition_of(line)].append(line)
                added += len(line)
        return added

    def line_order_is_key_order(self, data: bytes) -> bool:
        return self._above_separator is not None and not data.translate(None, self._above_separator)

    def _fields(self, line: bytes, count: int) -> tuple[bytes, bytes]:
        parts = line.split(self.separator, count)
        if len(parts) <= count:
            return line, b""
        return self.separator.join(parts[:count]), parts[count]
