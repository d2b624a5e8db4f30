"""One user step (mapper, combiner or reducer) of either kind behind one interface.

Inside the worker a record is one line ``key<separator>value`` (see worker.keys): the
streaming command's stdout as it is, or a Python callable's pair encoded with the job's
codec. Final output goes to a PartWriter: streaming lines verbatim, callables' pairs
as text or JSON.
"""

from __future__ import annotations

import itertools
import json
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from airflow_mapreduce.errors import RecordError
from airflow_mapreduce.plan.tasks import Counters, InputSplit
from airflow_mapreduce.spec.models import StepSpec
from airflow_mapreduce.worker import context
from airflow_mapreduce.worker.bad_records import DeadLetters
from airflow_mapreduce.worker.callables import load_callable
from airflow_mapreduce.worker.codec import Codec
from airflow_mapreduce.worker.keys import RecordFormat
from airflow_mapreduce.worker.outputs import PartWriter
from airflow_mapreduce.worker.records import as_streaming_input, split_lines
from airflow_mapreduce.worker.spill import SortBuffer
from airflow_mapreduce.worker.streaming import run_command, run_command_batches

FEED_CHUNK = 1 << 16
BATCH_RECORDS = 1 << 16


class Step:
    def __init__(
        self,
        spec: StepSpec,
        role: str,
        codec: Codec,
        fmt: RecordFormat,
        counters: Counters,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.spec = spec
        self.role = role
        self.codec = codec
        self.fmt = fmt
        self.counters = counters
        self.env = dict(env or {})
        self.function = load_callable(spec.callable, role) if spec.callable else None

    # Map side ---------------------------------------------------------------------------
    def map_into(
        self,
        blocks: Iterable[tuple[int, bytes]],
        split: InputSplit,
        env: Mapping[str, str],
        dead: DeadLetters,
        jsonlines: bool,
        sink: SortBuffer | PartWriter,
    ) -> None:
        """Run the mapper on a split's (offset, lines) blocks; records go to the sort buffer
        or (map-only) straight to the output."""
        if self.spec.command is not None:
            chunks = (
                as_streaming_input(
                    _drop_bad_json(block, start, split, dead) if jsonlines else block
                )
                for start, block in blocks
            )
            for lines in self._command_batches(chunks, split, env):
                if isinstance(sink, SortBuffer):
                    sink.add_lines(lines)
                else:
                    for line in lines:
                        sink.write_line(line)
            return
        pairs = self._map_pairs(blocks, split, dead, jsonlines)
        if isinstance(sink, PartWriter):
            for key, value in pairs:
                sink.write_pair(key, value)
            return
        encode = self.codec.encode
        if self.codec.kind == "json":  # one key field: hash the encoded key directly
            crc32, n, add = zlib.crc32, self.fmt.num_partitions, sink.add
            for key, value in pairs:
                raw_key = encode(key)
                add(crc32(raw_key) % n, raw_key + b"\t" + encode(value))
        else:
            join, lines = self.fmt.join, []
            for key, value in pairs:
                lines.append(join(encode(key), encode(value)))
                if len(lines) >= BATCH_RECORDS:
                    sink.add_lines(lines)
                    lines = []
            sink.add_lines(lines)

    def _map_pairs(
        self,
        blocks: Iterable[tuple[int, bytes]],
        split: InputSplit,
        dead: DeadLetters,
        jsonlines: bool,
    ) -> Iterator[tuple[Any, Any]]:
        function = self.function
        assert function is not None
        items = (
            item
            for start, block in blocks
            for item in _input_items(block, start, split, dead, jsonlines)
        )
        if context.is_batch_mapper(function):
            while batch := list(itertools.islice(items, BATCH_RECORDS)):
                try:
                    yield from list(function([value for _, _, value in batch]))
                except Exception:
                    # Find the culprit(s): each record alone, skipping or failing as configured.
                    for item in batch:
                        yield from self._call_one(function, item, split, dead, batch=True)
            return
        if not dead.settings.enabled:
            for offset, line, value in items:
                try:
                    yield from function(None, value)
                except Exception as exc:
                    dead.add(split, offset, line, f"{self.spec.callable} raised {exc!r}")
            return
        for item in items:
            yield from self._call_one(function, item, split, dead, batch=False)

    def _call_one(
        self,
        function: Any,
        item: tuple[int, bytes, Any],
        split: InputSplit,
        dead: DeadLetters,
        batch: bool,
    ) -> list[tuple[Any, Any]]:
        offset, line, value = item
        try:
            # Whole output or none: a record that raises halfway leaves no partial pairs.
            return list(function([value]) if batch else function(None, value))
        except Exception as exc:
            dead.add(split, offset, line, f"{self.spec.callable} raised {exc!r}")
            return []

    def _command_batches(
        self, chunks: Iterable[bytes], split: InputSplit | None, env: Mapping[str, str]
    ) -> Iterator[list[bytes]]:
        assert self.spec.command is not None
        what = self.role if split is None else f"{self.role} on split {split.describe()}"
        return run_command_batches(
            self.spec.command,
            chunks,
            what=what,
            counters=self.counters,
            env={**self.env, **env},
        )

    # Reduce side (records sorted by key) ------------------------------------------------
    def combine(self, lines: list[bytes]) -> list[bytes]:
        """Combiner on one sorted spill: lines in, lines out (in the shuffle's format)."""
        if self.spec.command is not None:
            return list(
                run_command(
                    self.spec.command,
                    _batched(lines),
                    what=self.role,
                    counters=self.counters,
                    env=self.env,
                )
            )
        encode, join = self.codec.encode, self.fmt.join
        return [join(encode(k), encode(v)) for k, v in self._reduce_pairs(lines)]

    def reduce_into(self, lines: Iterable[bytes], writer: PartWriter) -> None:
        if self.spec.command is not None:
            for batch in self._command_batches(_batched(lines), None, {}):
                for line in batch:
                    writer.write_line(line)
            return
        for key, value in self._reduce_pairs(lines):
            writer.write_pair(key, value)

    def _reduce_pairs(self, lines: Iterable[bytes]) -> Iterator[tuple[Any, Any]]:
        function = self.function
        assert function is not None
        decode, split = self.codec.decode, self.fmt.split
        for raw_key, group in itertools.groupby(lines, key=self.fmt.key_of):
            key = decode(raw_key)
            try:
                yield from function(key, (decode(split(line)[1]) for line in group))
            except Exception as exc:
                raise RecordError(
                    f"{self.role} {self.spec.callable} raised {exc!r} on key {key!r}"
                ) from exc


def _input_items(
    block: bytes, start: int, split: InputSplit, dead: DeadLetters, jsonlines: bool
) -> Iterator[tuple[int, bytes, Any]]:
    """(offset, raw line, value): the line as str, or its parsed JSON for jsonlines input."""
    for offset, line in split_lines(block, start):
        if not jsonlines:
            yield offset, line, line.decode("utf-8", "surrogateescape")
            continue
        if not line.strip():
            continue  # blank lines between JSON items are not records
        try:
            yield offset, line, json.loads(line)
        except ValueError as exc:
            dead.add(split, offset, line, f"input is not valid JSON ({exc})")


def _drop_bad_json(block: bytes, start: int, split: InputSplit, dead: DeadLetters) -> bytes:
    """JSON-lines input for a streaming mapper: lines it cannot take never reach it."""
    good = []
    for offset, line in split_lines(block, start):
        if not line.strip():
            continue
        try:
            json.loads(line)
        except ValueError as exc:
            dead.add(split, offset, line, f"input is not valid JSON ({exc})")
            continue
        good.append(line)
    good.append(b"")
    return b"\n".join(good)


def _batched(lines: Iterable[bytes]) -> Iterator[bytes]:
    """Join lines into ~64 KiB chunks: one pipe write per record would dominate."""
    buffer: list[bytes] = []
    size = 0
    for line in lines:
        buffer.append(line)
        size += len(line) + 1
        if size >= FEED_CHUNK:
            buffer.append(b"")
            yield b"\n".join(buffer)
            buffer.clear()
            size = 0
    if buffer:
        buffer.append(b"")
        yield b"\n".join(buffer)
