"""One user step (mapper, combiner or reducer) of either kind behind one interface.

Inside the worker a record is one line ``key<separator>value`` (see worker.keys): the
streaming command's stdout as it is, or a Python callable's pair encoded with the job's
codec. Final output goes to a PartWriter: streaming lines verbatim, callables' pairs
as text or JSON.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import operator
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from airflow_mapreduce.errors import CommandFailedError, TaskFailedError, raised_on_key
from airflow_mapreduce.job.models import StepSpec
from airflow_mapreduce.plan.tasks import Counters, InputSplit
from airflow_mapreduce.worker import reporter
from airflow_mapreduce.worker.bad_records import DeadLetters
from airflow_mapreduce.worker.callables import ReduceBy, load_callable
from airflow_mapreduce.worker.codec import Codec, decode_text, encode_json
from airflow_mapreduce.worker.fold import fold_sorted_blocks, reduce_sorted_blocks
from airflow_mapreduce.worker.keys import RecordFormat
from airflow_mapreduce.worker.line_buffer import LineBuffer
from airflow_mapreduce.worker.outputs import PartWriter
from airflow_mapreduce.worker.pair_buffer import PairBuffer
from airflow_mapreduce.worker.records import SPLIT_BLOCK, as_streaming_input, split_lines
from airflow_mapreduce.worker.sort_command import SortedCombine
from airflow_mapreduce.worker.streaming import lines_of, run_command_chunks

BATCH_RECORDS = 1 << 16
# Lines a per-record mapper takes between two batches of pairs: the pairs of a chunk are
# held at once, outside the sort buffer's budget, so a chunk is kept small.
RECORD_CHUNK = 1024
# Small input blocks (many small files) are joined into pipe writes of about this size.
FEED_BYTES = 1 << 16
_NONE = itertools.repeat(None)
BlocksOf = Callable[[InputSplit], Iterable[tuple[int, bytes]]]


class LineSink(Protocol):
    """Anything else map output lines may go to (the total-order sampler's keys)."""

    def add_lines(self, lines: list[bytes]) -> None: ...


class Step:
    def __init__(
        self,
        spec: StepSpec,
        role: str,
        codec: Codec,
        fmt: RecordFormat,
        counters: Counters,
        env: Mapping[str, str] | None = None,
        skip_mode: bool = False,
        where: str | None = None,
        input_pairs: bool = False,
    ) -> None:
        self.spec = spec
        # A later step's Python mapper takes the previous step's (key, value) records.
        self.input_pairs = input_pairs
        # What a combiner or reducer runs on, for messages (a mapper names its split).
        self.where = where
        self.skip_mode = skip_mode  # a streaming mapper's crashes are narrowed down
        self.role = role
        self.codec = codec
        self.fmt = fmt
        self.counters = counters
        self.env = dict(env or {})
        self.function = load_callable(spec.callable, role) if spec.callable else None
        # reduce_by: f(a, b) folds a key's values; as a function of (key, values) it runs
        # wherever a Python combiner or reducer would, and the sort buffer and the reduce
        # side fold with it directly where they can.
        self.merge = load_callable(spec.reduce_by, role) if spec.reduce_by else None
        if self.merge is not None:
            self.function = ReduceBy(self.merge)

    # Map side ---------------------------------------------------------------------------
    def map_into(
        self,
        blocks: Iterable[tuple[int, bytes]],
        split: InputSplit,
        env: Mapping[str, str],
        dead: DeadLetters,
        jsonlines: bool,
        sink: LineBuffer | PairBuffer | SortedCombine | PartWriter | LineSink,
    ) -> None:
        """Run the mapper on a split's (offset, lines) blocks (see map_splits)."""
        self.map_splits([split], lambda _: blocks, env, dead, jsonlines, sink)

    def map_splits(
        self,
        splits: Sequence[InputSplit],
        blocks_of: BlocksOf,
        env: Mapping[str, str],
        dead: DeadLetters,
        jsonlines: bool,
        sink: LineBuffer | PairBuffer | SortedCombine | PartWriter | LineSink,
    ) -> None:
        """Run the mapper on the splits' (offset, lines) blocks, split after split: a
        streaming command runs once for all of them, with `env` (as Hadoop's
        CombineFileInputFormat gives one mapper many small files). Records go to the sort
        buffer or (map-only) straight to the output."""
        if self.spec.command is not None:
            batches: Iterable[list[bytes]]
            if self.skip_mode:
                batches = _SkipMode(self, env, dead).batches(splits, blocks_of, jsonlines)
            else:
                fed = _Fed()
                chunks = _joined(fed.chunks(splits, blocks_of, dead, jsonlines))
                output = fed.named(self._command_output(chunks, splits, env))
                if isinstance(sink, SortedCombine):  # pipe reads go on to sort as they are
                    for chunk in output:
                        sink.add_chunk(chunk)
                    return
                batches = _lines_until_closed(output)
            for lines in batches:
                if isinstance(sink, PartWriter):
                    sink.write_lines(lines)
                elif isinstance(sink, PairBuffer):
                    raise TypeError("a streaming mapper's output goes to a LineBuffer")
                else:
                    sink.add_lines(lines)
            return
        mapped = itertools.chain.from_iterable(
            self._map_batches(blocks_of(split), split, dead, jsonlines) for split in splits
        )
        if isinstance(sink, PairBuffer):  # all-Python job: pairs stay objects until spilled
            for batch in mapped:
                if isinstance(batch, Mapping):
                    sink.add_mapping(batch)
                else:
                    sink.add_pairs(batch)
            return
        pairs = itertools.chain.from_iterable(map(_pairs_of, mapped))
        if isinstance(sink, PartWriter):
            sink.write_pairs(pairs)
        else:  # a command takes part downstream: records become text lines now
            encode, join, lines = self.codec.encode, self.fmt.join, []
            for key, value in pairs:
                lines.append(join(encode(key), encode(value)))
                if len(lines) >= BATCH_RECORDS:
                    sink.add_lines(lines)
                    lines = []
            sink.add_lines(lines)

    def _map_batches(
        self,
        blocks: Iterable[tuple[int, bytes]],
        split: InputSplit,
        dead: DeadLetters,
        jsonlines: bool,
    ) -> Iterator[list[tuple[Any, Any]] | Mapping[Any, Any]]:
        """The mapper's pairs, a batch at a time: lists of pairs, or the mapping a batch
        mapper returned (a dict or Counter: each key once). Batches keep the Python work
        per pair out of here: a per-record mapper's generators are drained by C loops."""
        function = self.function
        assert function is not None
        batch_mapper = reporter.is_batch_mapper(function)
        # How one record is passed when records are called one by one.
        one: Callable[[Any], Any] = (lambda v: [v]) if batch_mapper else (lambda v: (None, v))
        if self.input_pairs and not batch_mapper:
            one = tuple  # the record is already (key, value)
        for start, block in blocks:
            items = list(_json_items(block, start, split, dead)) if jsonlines else None
            values = [value for _, _, value in items] if items is not None else _text_lines(block)
            if self.input_pairs:
                values = _as_pairs(values, jsonlines, self.fmt.separator.decode())
            size = BATCH_RECORDS if batch_mapper else RECORD_CHUNK
            for first in range(0, len(values), size):
                chunk = values[first : first + size]
                if not batch_mapper and dead.settings.enabled:  # each record alone: skippable
                    yield self._each_record(function, one, chunk, first, block, start, split,
                                            dead, items)  # fmt: skip
                    continue
                pairs: list[tuple[Any, Any]] | Mapping[Any, Any]
                try:
                    if batch_mapper:
                        result = function(chunk)
                        pairs = result if isinstance(result, Mapping) else list(result)
                    elif self.input_pairs:
                        pairs = list(
                            itertools.chain.from_iterable(itertools.starmap(function, chunk))
                        )
                    else:
                        pairs = list(itertools.chain.from_iterable(map(function, _NONE, chunk)))
                except Exception:
                    # Find the culprit(s): each record alone, skipping or failing as configured.
                    pairs = self._each_record(function, one, chunk, first, block, start, split,
                                              dead, items)  # fmt: skip
                yield pairs

    def _each_record(
        self,
        function: Any,
        one: Callable[[Any], Any],
        chunk: list[Any],
        first: int,
        block: bytes,
        start: int,
        split: InputSplit,
        dead: DeadLetters,
        items: list[tuple[int, bytes, Any]] | None,
    ) -> list[tuple[Any, Any]]:
        pairs: list[tuple[Any, Any]] = []
        for index, value in enumerate(chunk, first):
            pairs += self._call_one(function, one(value), block, start, index, split, dead, items)
        return pairs

    def _call_one(
        self,
        function: Any,
        args: Any,
        block: bytes,
        start: int,
        index: int,
        split: InputSplit,
        dead: DeadLetters,
        items: list[tuple[int, bytes, Any]] | None = None,
    ) -> list[tuple[Any, Any]]:
        try:
            # Whole output or none: a record that raises halfway leaves no partial pairs.
            return list(_pairs_of(function(*args) if isinstance(args, tuple) else function(args)))
        except Exception as exc:
            offset, line = _locate(block, start, index, items)
            dead.add(split, offset, line, f"{self.spec.python} raised {exc!r}")
            return []

    def _command_output(
        self,
        chunks: Iterable[bytes],
        splits: Sequence[InputSplit] | None,
        env: Mapping[str, str],
    ) -> Generator[bytes, None, None]:
        assert self.spec.command is not None
        if splits:
            what = f"{self.role} on {splits_named(splits)}"
        else:
            what = self.role if self.where is None else f"{self.role} on {self.where}"
        return run_command_chunks(
            self.spec.command,
            chunks,
            role=self.role,
            what=what,
            counters=self.counters,
            env={**self.env, **env},
        )

    def _command_batches(
        self,
        chunks: Iterable[bytes],
        splits: Sequence[InputSplit] | None,
        env: Mapping[str, str],
    ) -> Iterator[list[bytes]]:
        return _lines_until_closed(self._command_output(chunks, splits, env))

    # Reduce side (records sorted by key) ------------------------------------------------
    def combine(self, lines: list[bytes]) -> list[bytes]:
        """Combiner on one sorted spill: lines in, lines out (in the shuffle's format)."""
        if self.spec.command is not None:
            batches = self._command_batches(_batched(lines), None, {})
        else:
            batches = self._encoded_batches(self._reduce_pairs([lines]))
        return list(itertools.chain.from_iterable(batches))

    def combine_sorted(self, chunks: Iterable[bytes]) -> Iterator[list[bytes]]:
        """Combiner on a task's whole sorted output, given as pipe reads of LF-terminated
        lines: its output lines, a batch at a time."""
        if self.spec.command is not None:
            return self._command_batches(chunks, None, {})
        return self._encoded_batches(self._reduce_pairs(lines_of(chunks)))

    def _encoded_batches(self, pairs: Iterator[tuple[Any, Any]]) -> Iterator[list[bytes]]:
        """A Python combiner's pairs as record lines in the shuffle's format, in batches."""
        encode = encode_json if self.codec.kind == "json" else self.codec.encode
        sep = self.fmt.separator
        while batch := list(itertools.islice(pairs, BATCH_RECORDS)):
            yield [encode(k) + sep + encode(v) for k, v in batch]

    def reduce_into(self, blocks: Iterable[list[bytes]], writer: PartWriter) -> None:
        """Reduce key-sorted record lines, given as blocks of lines, into the writer."""
        if self.spec.command is not None:
            lines = itertools.chain.from_iterable(blocks)
            for batch in self._command_batches(_batched(lines), None, {}):
                writer.write_lines(batch)
        elif self.merge is not None and self.codec.kind == "json":
            name = f"{self.role} {self.spec.python}"
            for keys, values in fold_sorted_blocks(blocks, self.merge, name):
                writer.write_columns(keys, values)
        elif self.codec.kind == "json":  # all-Python job: groups cut a block at a time
            assert self.function is not None
            name = f"{self.role} {self.spec.python}"
            for pairs in reduce_sorted_blocks(blocks, self.function, name):
                writer.write_pair_list(pairs)
        else:
            writer.write_pairs(self._reduce_pairs(blocks))

    def _reduce_pairs(self, blocks: Iterable[list[bytes]]) -> Iterator[tuple[Any, Any]]:
        """The reducer's (or Python combiner's) pairs for key-sorted text record lines (a
        streaming step takes part), given as blocks of lines. Only its own errors are
        named against a key: the writer's are not raised in here."""
        function = self.function
        assert function is not None
        lines = itertools.chain.from_iterable(blocks)
        groups = _Current(self._text_groups(lines))
        try:  # one chain of C iterators; the Python work left is the reducer's own
            yield from itertools.chain.from_iterable(itertools.starmap(function, groups))
        except Exception as exc:
            raise raised_on_key(f"{self.role} {self.spec.python}", exc, groups.key) from exc

    def _text_groups(self, lines: Iterable[bytes]) -> Iterator[tuple[Any, Iterator[Any]]]:
        """(decoded key, iterator of its decoded values) for key-sorted text-codec lines:
        values stream, a key with more values than memory holds is fine."""
        decode, decode_all = self.codec.decode, functools.partial(map, decode_text)
        if self.fmt.key_fields == 1:
            fields: Iterator[Any] = map(
                operator.methodcaller("partition", self.fmt.separator), lines
            )
            value_of = operator.itemgetter(2)
        else:
            fields = map(self.fmt.split, lines)
            value_of = operator.itemgetter(1)
        for raw_key, group in itertools.groupby(fields, operator.itemgetter(0)):
            yield decode(raw_key), decode_all(map(value_of, group))


class _Current:
    """Passes (key, values) groups through, remembering the key for error messages."""

    def __init__(self, groups: Iterator[tuple[Any, Iterator[Any]]]) -> None:
        self._groups = groups
        self.key: Any = None

    def __iter__(self) -> Iterator[tuple[Any, Iterator[Any]]]:
        for group in self._groups:
            self.key = group[0]
            yield group


class _SkipMode:
    """Hadoop's skip mode for a streaming mapper that crashes on some records.

    Each 1 MiB of input (a block of a large split, or the records of many small files
    together) is one run of the command; a run that fails is split in halves,
    recursively, until the records the command cannot take alone are found: they become
    bad records (within the job's budget, each named with its own split), and the output
    of every run that succeeded is kept. A mapper that carries state across lines sees
    smaller inputs here.
    """

    MAX_RUNS = 500  # a command failing on (nearly) everything: give up, do not bisect it all

    def __init__(self, step: Step, env: Mapping[str, str], dead: DeadLetters) -> None:
        self.step, self.env, self.dead = step, env, dead
        self.runs = 0

    def batches(
        self, splits: Sequence[InputSplit], blocks_of: BlocksOf, jsonlines: bool
    ) -> Iterator[list[bytes]]:
        """The output of one run per SPLIT_BLOCK bytes of input, whatever the splits' sizes."""
        records: list[tuple[InputSplit, int, bytes]] = []
        size = 0
        for split in splits:
            for start, block in blocks_of(split):
                found = _records(block, start, split, self.dead, jsonlines)
                records += [(split, offset, line) for offset, line in found]
                size += len(block)
                if size >= SPLIT_BLOCK:
                    yield self.run(records)
                    records, size = [], 0
        yield self.run(records)

    def run(self, records: list[tuple[InputSplit, int, bytes]]) -> list[bytes]:
        if not records:
            return []
        self.runs += 1
        data = b"\n".join([line for _, _, line in records] + [b""])
        splits = list(dict.fromkeys(split for split, _, _ in records))
        try:
            out: list[bytes] = []
            for lines in self.step._command_batches([data], splits, self.env):
                out += lines
            return out
        except CommandFailedError as exc:
            if self.runs >= self.MAX_RUNS:
                raise TaskFailedError(
                    f"skip mode gave up after {self.runs} runs of the mapper command: it "
                    f"fails on too many records to find them one by one. Last failure: {exc}"
                ) from None
            if len(records) > 1:
                middle = len(records) // 2
                return self.run(records[:middle]) + self.run(records[middle:])
            split, offset, line = records[0]
            error = str(exc).splitlines()[0]
            self.dead.add(split, offset, line, f"command failed on this record ({error})")
            return []


class _Fed:
    """A streaming mapper's input, split after split, remembering the last block fed: a
    command that fails on one of many small files is named with where it had got to."""

    def __init__(self) -> None:
        self.split: InputSplit | None = None
        self.offset = 0

    def chunks(
        self, splits: Sequence[InputSplit], blocks_of: BlocksOf, dead: DeadLetters, jsonlines: bool
    ) -> Iterator[bytes]:
        for split in splits:
            for start, block in blocks_of(split):
                self.split, self.offset = split, start
                yield as_streaming_input(
                    _drop_bad_json(block, start, split, dead) if jsonlines else block
                )

    def named(self, output: Generator[bytes, None, None]) -> Generator[bytes, None, None]:
        """The command's output; a failure also says which input it had been fed last."""
        try:
            yield from output
        except CommandFailedError as exc:
            if self.split is None:
                raise
            raise CommandFailedError(
                f"{exc}\nThe input fed to it last: split {self.split.describe()}, the block "
                f"at byte offset {self.offset} (what it failed on comes at or before it).",
                exc.role,
            ) from None


def splits_named(splits: Sequence[InputSplit], most: int = 3) -> str:
    """Splits for a message: the first few, and how many more."""
    named = ", ".join(split.describe() for split in splits[:most])
    more = f" and {len(splits) - most} more" if len(splits) > most else ""
    return f"split{'s' if len(splits) > 1 else ''} {named}{more}"


def _lines_until_closed(output: Generator[bytes, None, None]) -> Iterator[list[bytes]]:
    with contextlib.closing(output):  # a consumer that stops early stops the command
        yield from lines_of(output)


def _joined(chunks: Iterable[bytes], size: int = FEED_BYTES) -> Iterator[bytes]:
    """Chunks joined into pipe writes of at least `size` bytes (the last may be shorter):
    a write per small file would cost a system call per file."""
    pending: list[bytes] = []
    held = 0
    for chunk in chunks:
        if not pending and len(chunk) >= size:
            yield chunk  # a large split's block: as it is, not copied
            continue
        pending.append(chunk)
        held += len(chunk)
        if held >= size:
            yield b"".join(pending)
            pending, held = [], 0
    if pending:
        yield b"".join(pending)


def _pairs_of(batch: Iterable[tuple[Any, Any]] | Mapping[Any, Any]) -> Iterable[tuple[Any, Any]]:
    """A mapper's output as pairs: a batch mapper may return a mapping of key -> value."""
    return batch.items() if isinstance(batch, Mapping) else batch


def _records(
    block: bytes, start: int, split: InputSplit, dead: DeadLetters, jsonlines: bool
) -> list[tuple[int, bytes]]:
    """(offset, line) of each record of a block a streaming mapper is to see."""
    if not jsonlines:
        return list(split_lines(block, start))
    return [(offset, line) for offset, line, _ in _json_items(block, start, split, dead)]


_chained = itertools.chain.from_iterable


def _as_pairs(values: list[Any], jsonlines: bool, separator: str) -> list[Any]:
    """The previous step's records as (key, value): its {"key", "value"} JSON lines, or
    its key<separator>value text lines (a line without one is all key, as in Hadoop)."""
    if jsonlines:
        return [
            (v.get("key"), v.get("value")) if isinstance(v, dict) else (None, v) for v in values
        ]
    pairs = []
    for line in values:
        key, _, value = line.partition(separator)
        pairs.append((key, value))
    return pairs


def _text_lines(block: bytes) -> list[str]:
    """A block's lines as str, decoded at once (LF never occurs inside a UTF-8 sequence)."""
    text = block.decode("utf-8", "surrogateescape")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # after the final newline: not a record
    return lines


def _locate(
    block: bytes, start: int, index: int, items: list[tuple[int, bytes, Any]] | None
) -> tuple[int, bytes]:
    """(byte offset, raw line) of the index-th record: found only when a record is bad."""
    if items is not None:
        return items[index][0], items[index][1]
    return next(itertools.islice(split_lines(block, start), index, None))


def _json_items(
    block: bytes, start: int, split: InputSplit, dead: DeadLetters
) -> Iterator[tuple[int, bytes, Any]]:
    """(offset, raw line, parsed item) of each JSON line; bad JSON is a bad record."""
    for offset, line in split_lines(block, start):
        if not line.strip():
            continue  # blank lines between JSON items are not records
        try:
            yield offset, line, json.loads(line)
        except ValueError as exc:
            dead.add(split, offset, line, f"input is not valid JSON ({exc})")


def _drop_bad_json(block: bytes, start: int, split: InputSplit, dead: DeadLetters) -> bytes:
    """JSON-lines input for a streaming mapper: lines it cannot take never reach it."""
    return b"\n".join([line for _, line in _records(block, start, split, dead, True)] + [b""])


def _batched(lines: Iterable[bytes], size: int = 4096) -> Iterator[bytes]:
    """Join lines into LF-terminated chunks of `size` lines (taken and joined in C): one
    pipe write per record would dominate."""
    it = iter(lines)
    while chunk := list(itertools.islice(it, size)):
        chunk.append(b"")
        yield b"\n".join(chunk)
