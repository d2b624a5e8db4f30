"""Where the key ends in a record line, and which part of the key picks the partition.

Records travel through the shuffle as the lines the mapper wrote: the key is the text
before the ``key_fields``-th separator (the whole line when it has fewer fields), the
rest is the value (Hadoop Streaming's rule). Partitioning may use only the first
``partition_fields`` fields of the key; the full key still orders records (secondary sort).
"""

from __future__ import annotations

import zlib

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
    ) -> None:
        self.separator = separator
        # True when sorting whole lines orders them by key: then merges compare lines (in
        # C) instead of calling key_of on each. So for JSON keys: TAB sorts below every
        # byte of their text. Raw bytes may hold anything, so streaming lines may not.
        self.lines_sort_as_keys = lines_sort_as_keys
        self.key_fields = key_fields
        self.partition_fields = partition_fields if partition_fields != key_fields else None
        self.num_partitions = max(num_partitions, 1)

    @classmethod
    def of(cls, job: JobRuntime) -> RecordFormat:
        if job.codec == "json":  # keys are JSON text: no TAB inside, one field
            return cls(num_partitions=job.num_partitions, lines_sort_as_keys=True)
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

    def partition_of_key(self, key: bytes) -> int:
        """The partition of a record with this key (only its first partition_fields count)."""
        if self.partition_fields is not None:
            key = self._fields(key, self.partition_fields)[0]
        # Stable across processes and machines (never Python's salted hash()).
        return zlib.crc32(key) % self.num_partitions

    def _fields(self, line: bytes, count: int) -> tuple[bytes, bytes]:
        parts = line.split(self.separator, count)
        if len(parts) <= count:
            return line, b""
        return self.separator.join(parts[:count]), parts[count]
