"""One user step (mapper, combiner or reducer) of either kind behind one interface.

Records inside the worker are (key, value) byte pairs in the job's codec. Final output
lines are the streaming command's stdout verbatim, or ``key<TAB>value`` text for callables.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from operator import itemgetter
from typing import Any

from airflow_mapreduce.errors import RecordError
from airflow_mapreduce.plan.tasks import Counters, InputSplit
from airflow_mapreduce.spec.models import StepSpec
from airflow_mapreduce.worker.callables import load_callable
from airflow_mapreduce.worker.codec import Codec, format_output, join_record, split_record
from airflow_mapreduce.worker.records import as_streaming_input, split_lines
from airflow_mapreduce.worker.streaming import run_command

FEED_CHUNK = 1 << 16


class Step:
    def __init__(self, spec: StepSpec, role: str, codec: Codec, counters: Counters) -> None:
        self.spec = spec
        self.role = role
        self.codec = codec
        self.counters = counters

    # Map side ---------------------------------------------------------------------------
    def map_records(
        self, block: bytes, start: int, split: InputSplit, env: Mapping[str, str]
    ) -> Iterator[tuple[bytes, bytes]]:
        """Records of a split's lines; `start` is the byte offset of the block's first line."""
        if self.spec.command is not None:
            return (split_record(line) for line in self._map_lines(block, split, env))
        encode = self.codec.encode
        return ((encode(k), encode(v)) for k, v in self._map_pairs(block, start, split))

    def map_output_lines(
        self, block: bytes, start: int, split: InputSplit, env: Mapping[str, str]
    ) -> Iterator[bytes]:
        """Map-only jobs: the mapper's output is the job's output."""
        if self.spec.command is not None:
            return (line + b"\n" for line in self._map_lines(block, split, env))
        return (format_output(k, v) for k, v in self._map_pairs(block, start, split))

    def _map_lines(
        self, block: bytes, split: InputSplit, env: Mapping[str, str]
    ) -> Iterator[bytes]:
        assert self.spec.command is not None
        what = f"{self.role} on split {split.describe()}"
        return run_command(
            self.spec.command,
            [as_streaming_input(block)],
            what=what,
            counters=self.counters,
            env=env,
        )

    def _map_pairs(self, block: bytes, start: int, split: InputSplit) -> Iterator[tuple[Any, Any]]:
        assert self.spec.callable is not None
        function = load_callable(self.spec.callable, self.role)
        for offset, line in split_lines(block, start):
            try:
                yield from function(None, line.decode("utf-8", "surrogateescape"))
            except Exception as exc:
                raise RecordError(
                    f"{self.role} {self.spec.callable} raised {exc!r} on split "
                    f"{split.describe()}, record at byte offset {offset}: {line[:200]!r}"
                ) from exc

    # Reduce side (records sorted by key) ------------------------------------------------
    def reduce_records(
        self, records: Iterable[tuple[bytes, bytes]]
    ) -> Iterator[tuple[bytes, bytes]]:
        """Combiner use: output stays in the shuffle's codec."""
        if self.spec.command is not None:
            return (split_record(line) for line in self._reduce_lines(records))
        encode = self.codec.encode
        return ((encode(k), encode(v)) for k, v in self._reduce_pairs(records))

    def reduce_output_lines(self, records: Iterable[tuple[bytes, bytes]]) -> Iterator[bytes]:
        if self.spec.command is not None:
            return (line + b"\n" for line in self._reduce_lines(records))
        return (format_output(k, v) for k, v in self._reduce_pairs(records))

    def _reduce_lines(self, records: Iterable[tuple[bytes, bytes]]) -> Iterator[bytes]:
        assert self.spec.command is not None
        return run_command(
            self.spec.command, _batched(records), what=self.role, counters=self.counters
        )

    def _reduce_pairs(self, records: Iterable[tuple[bytes, bytes]]) -> Iterator[tuple[Any, Any]]:
        assert self.spec.callable is not None
        function = load_callable(self.spec.callable, self.role)
        decode = self.codec.decode
        for raw_key, group in itertools.groupby(records, key=itemgetter(0)):
            key = decode(raw_key)
            try:
                yield from function(key, (decode(v) for _, v in group))
            except Exception as exc:
                raise RecordError(
                    f"{self.role} {self.spec.callable} raised {exc!r} on key {key!r}"
                ) from exc


def _batched(records: Iterable[tuple[bytes, bytes]]) -> Iterator[bytes]:
    """Join records into ~64 KiB chunks: one pipe write per record would dominate."""
    buffer: list[bytes] = []
    size = 0
    for key, value in records:
        line = join_record(key, value)
        buffer.append(line)
        size += len(line)
        if size >= FEED_CHUNK:
            yield b"".join(buffer)
            buffer.clear()
            size = 0
    if buffer:
        yield b"".join(buffer)
