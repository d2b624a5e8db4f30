"""The map-side sort buffers against independent references, with spills forced.

Whatever the budget: every record comes out exactly once, byte for byte; each key lands
in one partition; each partition is in key order (encoded-bytes order for JSON keys).
"""

from __future__ import annotations

import collections
import io
import json
import random
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_mapreduce.errors import RecordError
from airflow_mapreduce.job.models import StepSpec
from airflow_mapreduce.worker.codec import Codec
from airflow_mapreduce.worker.keys import RecordFormat
from airflow_mapreduce.worker.line_buffer import LineBuffer, PresortedLineBuffer
from airflow_mapreduce.worker.outputs import PartWriter
from airflow_mapreduce.worker.pair_buffer import KEY_OVERHEAD, VALUE_SLOT, PairBuffer
from airflow_mapreduce.worker.spill import MapOutputBuffer
from airflow_mapreduce.worker.steps import Step

SMALL = 64 * 1024  # the smallest budget a job may set: forces many spills here


def drained(buffer: MapOutputBuffer) -> dict[int, list[bytes]]:
    try:
        return {p: list(lines) for p, lines in buffer.partitions()}
    finally:
        buffer.close()


def check_partitions(parts: dict[int, list[bytes]], key_of: Any) -> None:
    owner: dict[bytes, int] = {}
    for partition, lines in parts.items():
        keys = [key_of(line) for line in lines]
        assert keys == sorted(keys), f"partition {partition} is not in key order"
        for key in keys:
            assert owner.setdefault(key, partition) == partition, f"{key!r} in two partitions"


def random_lines(rng: random.Random, count: int) -> list[bytes]:
    lines = []
    for _ in range(count):
        kind = rng.random()
        user = b"u%d" % rng.randrange(300)
        if kind < 0.1:
            lines.append(user)  # no separator: all key, and must come back unchanged
        elif kind < 0.2:
            lines.append(user + b"\t")  # empty value
        else:
            lines.append(b"%s\t%d\t%s" % (user, rng.randrange(50), rng.randbytes(4).hex().encode()))
    return lines


@pytest.mark.parametrize("kind", [LineBuffer, PresortedLineBuffer])
@pytest.mark.parametrize(("key_fields", "partition_fields"), [(1, None), (2, None), (2, 1)])
@pytest.mark.parametrize("budget", [SMALL, 64 * 1024**2])
def test_line_buffer_returns_every_line_unchanged_in_key_order(
    kind: type[LineBuffer | PresortedLineBuffer],
    key_fields: int,
    partition_fields: int | None,
    budget: int,
) -> None:
    """In any order: a PresortedLineBuffer must sort what did not come presorted."""
    rng = random.Random(key_fields * 10 + (partition_fields or 0))
    lines = random_lines(rng, 40_000)
    fmt = RecordFormat(b"\t", key_fields, partition_fields, num_partitions=3)
    buffer = kind(fmt, budget)
    for first in range(0, len(lines), 997):
        buffer.add_lines(lines[first : first + 997])
    assert (buffer.spills > 3) == (budget == SMALL)
    parts = drained(buffer)
    assert collections.Counter(line for ls in parts.values() for line in ls) == (
        collections.Counter(lines)
    )

    def sort_key(line: bytes) -> bytes:  # Hadoop's rule, written out independently
        fields = line.split(b"\t")
        return b"\t".join(fields[:key_fields]) if len(fields) > key_fields else line

    def partition_key(line: bytes) -> bytes:
        return line.split(b"\t")[0] if partition_fields == 1 else sort_key(line)

    check_partitions(parts, sort_key)
    check_partitions(parts, partition_key)


@pytest.mark.parametrize("key_fields", [1, 2])
def test_line_buffer_counts_every_long_value_against_its_budget(key_fields: int) -> None:
    """Long values hidden among one-byte ones (first, middle and last lines short) are
    all charged: the buffer spills before holding more than its budget of them."""
    long_value = b"v" * 1000
    lines = [b"k%d\t%s" % (i, b"1" if i % 2 == 0 else long_value) for i in range(1001)]
    held = sum(len(line.partition(b"\t")[2]) for line in lines)  # ~500 kB of values
    buffer = LineBuffer(RecordFormat(key_fields=key_fields, num_partitions=2), budget=4 * held)
    try:
        buffer.add_lines(lines)
        assert buffer.used >= held
        buffer.add_lines(lines)
        buffer.add_lines(lines)
        buffer.add_lines(lines)  # 4x the values, plus keys and slots: over the budget
        assert buffer.spills == 1
    finally:
        buffer.close()


def test_pair_buffer_charges_a_new_str_key_its_real_size() -> None:
    keys = ["w", "word" * 20, "naïve", "日本語", "😀x"]  # ASCII, Latin-1, UCS-2, UCS-4
    buffer = PairBuffer(RecordFormat(num_partitions=1), budget=64 * 1024**2)
    try:
        buffer.add_pairs((key, 1) for key in keys)
        expected = sum(sys.getsizeof(k) + KEY_OVERHEAD + VALUE_SLOT for k in keys)
        assert buffer.used == expected
    finally:
        buffer.close()


@pytest.mark.parametrize("key_kind", [str, int])  # int keys: the encoded-keys path
def test_pair_buffer_charges_every_value_that_is_not_an_int(key_kind: type) -> None:
    """Long str values among small ints (which are what each batch ends with) are each
    charged their size: sampling one value per batch would charge them nothing."""
    values = [1 if i % 3 else "v" * (i * 37 % 5000) for i in range(10_001)] + [1]
    pairs = [(key_kind(i % 10), value) for i, value in enumerate(values)]
    buffer = PairBuffer(RecordFormat(num_partitions=1), budget=64 * 1024**2)
    try:
        buffer.add_pairs(pairs)
        longs = sum(sys.getsizeof(v) for v in values if isinstance(v, str))
        keys = sum(
            sys.getsizeof(k if key_kind is str else shuffle_json(k)) + KEY_OVERHEAD
            for k in {k for k, _ in pairs}
        )
        assert buffer.records == len(pairs)
        assert buffer.used == keys + len(pairs) * VALUE_SLOT + longs  # small ints cost 0
    finally:
        buffer.close()


def test_line_buffer_runs_the_combiner_on_each_sorted_spill() -> None:
    lines = [b"w%d\t1" % (i % 500) for i in range(60_000)]
    seen: list[list[bytes]] = []

    def combine(batch: list[bytes]) -> list[bytes]:
        seen.append(batch)
        counts = collections.Counter(line.split(b"\t")[0] for line in batch)
        return [b"%s\t%d" % (word, n) for word, n in reversed(counts.items())]  # any order

    buffer = LineBuffer(RecordFormat(num_partitions=2), SMALL, combine)
    for first in range(0, len(lines), 1000):
        buffer.add_lines(lines[first : first + 1000])
    parts = drained(buffer)
    assert buffer.spills > 1 and len(seen) > 2
    assert all(batch == sorted(batch) for batch in seen)
    total: collections.Counter[bytes] = collections.Counter()
    for line in (line for ls in parts.values() for line in ls):
        word, count = line.split(b"\t")
        total[word] += int(count)
    assert total == collections.Counter(line.split(b"\t")[0] for line in lines)
    assert buffer.combine_input == len(lines) > buffer.combine_output
    check_partitions(parts, lambda line: line.split(b"\t")[0])


def shuffle_json(obj: Any) -> bytes:
    """How a Python key or value travels in the shuffle: compact JSON (independent of codec.py)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def mixed_pairs(rng: random.Random, count: int) -> Iterator[tuple[Any, Any]]:
    keys: list[Any] = ["a", "b\tc", 'q"uote', "ünï", 1, 1.0, True, None, [1, "x"], {"k": 2}]
    keys += [f"w{i}" for i in range(200)]
    for i in range(count):
        yield rng.choice(keys), rng.choice([1, i, "text", [i], {"n": i}, 2.5])


@pytest.mark.parametrize("budget", [SMALL, 64 * 1024**2])
def test_pair_buffer_keeps_keys_that_python_calls_equal_apart(budget: int) -> None:
    """1, 1.0 and True are one dict key in Python but three keys in the shuffle;
    unhashable keys (lists, dicts) are fine; order is the encoded bytes' order."""
    pairs = list(mixed_pairs(random.Random(5), 30_000))
    buffer = PairBuffer(RecordFormat(num_partitions=3, lines_sort_as_keys=True), budget)
    buffer.add_pairs(pairs[:10])  # str keys only so far...
    buffer.add_pairs(iter(pairs[10:]))  # ...then every other kind
    assert buffer.records == len(pairs)
    assert (buffer.spills > 3) == (budget == SMALL)
    parts = drained(buffer)
    expected = collections.Counter(shuffle_json(k) + b"\t" + shuffle_json(v) for k, v in pairs)
    assert collections.Counter(line for ls in parts.values() for line in ls) == expected
    check_partitions(parts, lambda line: line.split(b"\t")[0])


def test_pair_buffer_combiner_sees_python_objects_and_may_change_keys() -> None:
    words = [f"w{i % 700}" for i in range(50_000)]
    calls: list[tuple[Any, list[Any]]] = []

    def combiner(word: str, counts: Iterator[int]) -> Iterator[tuple[Any, int]]:
        values = list(counts)
        calls.append((word, values))
        yield (word if int(word[1:]) % 2 else word.upper()), sum(values)  # half move keys

    buffer = PairBuffer(RecordFormat(num_partitions=4, lines_sort_as_keys=True), SMALL, combiner)
    buffer.add_pairs((w, 1) for w in words)
    parts = drained(buffer)
    assert buffer.spills > 1
    assert all(isinstance(w, str) and set(v) == {1} for w, v in calls)
    total: collections.Counter[str] = collections.Counter()
    for line in (line for ls in parts.values() for line in ls):
        key, value = line.split(b"\t")
        total[json.loads(key)] += int(value)
    expected = collections.Counter(w if int(w[1:]) % 2 else w.upper() for w in words)
    assert total == expected
    check_partitions(parts, lambda line: line.split(b"\t")[0])


def test_a_failing_combiner_names_its_key() -> None:
    def combiner(word: str, counts: Iterator[int]) -> Iterator[tuple[str, int]]:
        if word == "bad":
            raise ValueError("no")
        yield word, sum(counts)

    buffer = PairBuffer(RecordFormat(lines_sort_as_keys=True), SMALL, combiner, "combiner m:f")
    buffer.add_pairs([("ok", 1), ("bad", 1)])
    with pytest.raises(RecordError, match=r"combiner m:f raised ValueError\('no'\) on key 'bad'"):
        drained(buffer)


@pytest.mark.parametrize("emits", ["a sum per key", "any pairs"])
def test_pair_buffer_combiner_may_emit_any_number_of_pairs_under_any_keys(emits: str) -> None:
    """Keys over several of the drain's map() chunks, str keys and others: what comes
    out is, per key, what a plain loop calling the combiner on each group gives, in key
    order, each key in one partition."""
    rng = random.Random(11)
    keys: list[Any] = [f"k{i}" for i in range(6_000)] + [7, None, [1, "x"]]
    pairs = [(rng.choice(keys), rng.randrange(5)) for _ in range(40_000)]

    def combiner(key: Any, values: Iterator[int]) -> Iterator[Any]:
        kept = list(values)
        kind = sum(kept) % 4 if emits == "any pairs" else 3
        if kind == 1:
            yield key, kept[0]
        elif kind == 2:
            yield [key, len(kept)]  # a two-item list is a pair too
            yield "moved", kept  # another key, a non-int value
        elif kind == 3:
            yield key, sum(kept)

    groups: dict[bytes, tuple[Any, list[int]]] = {}
    for key, value in pairs:
        groups.setdefault(shuffle_json(key), (key, []))[1].append(value)
    expected = collections.Counter(
        shuffle_json(k) + b"\t" + shuffle_json(v)
        for key, values in groups.values()
        for k, v in combiner(key, iter(values))
    )
    fmt = RecordFormat(num_partitions=3, lines_sort_as_keys=True)
    buffer = PairBuffer(fmt, 64 * 1024**2, combiner)
    buffer.add_pairs(pairs)
    parts = drained(buffer)
    assert collections.Counter(line for ls in parts.values() for line in ls) == expected
    check_partitions(parts, lambda line: line.split(b"\t")[0])
    assert buffer.combine_input == len(pairs)
    assert buffer.combine_output == sum(expected.values())


@pytest.mark.parametrize(
    ("output", "error"),
    [
        ("raise", r"combiner m:f raised ValueError\('no'\) on key 'k5000'"),
        ("no pair", r"combiner m:f yielded 'k5000': a combiner yields \(key, value\) pairs"),
        ("no json", r"combiner m:f emitted \{1\} for key 'k5000', which the shuffle cannot"),
        ("no json key", r"combiner m:f emitted key frozenset\(\{'k5000'\}\), which the shuffle"),
    ],
)
def test_what_a_combiner_gets_wrong_is_named_with_its_key(output: str, error: str) -> None:
    def combiner(key: str, values: Iterator[int]) -> Iterator[Any]:
        if key != "k5000":
            yield key, sum(values)
        elif output == "raise":
            raise ValueError("no")
        elif output == "no pair":
            yield key
        elif output == "no json":
            yield key, {1}
        else:
            yield frozenset([key]), 1

    buffer = PairBuffer(RecordFormat(), 64 * 1024**2, combiner, "combiner m:f")
    buffer.add_pairs([(f"k{i}", 1) for i in range(6_000)])
    with pytest.raises(RecordError, match=error):
        drained(buffer)


def test_a_mapper_yielding_non_pairs_is_not_mistaken_for_an_unhashable_key() -> None:
    buffer = PairBuffer(RecordFormat(lines_sort_as_keys=True), SMALL)
    with pytest.raises(TypeError, match="unpack"):
        buffer.add_pairs([("a", 1), 5])  # type: ignore[list-item]
    buffer.close()


class _BrokenWriter:
    def write_pairs(self, pairs: Iterator[tuple[Any, Any]]) -> None:
        for _ in pairs:
            raise OSError("disk full")

    def write_pair_list(self, pairs: list[tuple[Any, Any]]) -> None:
        self.write_pairs(iter(pairs))


def test_reduce_errors_name_the_key_and_writer_errors_stay_the_writers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "reducers_under_test.py").write_text(
        "def fail_on_b(key, values):\n"
        "    if key == 'b':\n"
        "        raise ValueError('no')\n"
        "    yield key, sum(values)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = StepSpec(callable="reducers_under_test:fail_on_b")
    step = Step(spec, "reducer", Codec("json"), RecordFormat(), {})
    lines = [b'"a"\t1', b'"a"\t2', b'"b"\t3']
    named = r"reducer .*fail_on_b raised ValueError\('no'\) on key 'b'"
    with pytest.raises(RecordError, match=named):
        step.reduce_into([lines], PartWriter(io.BytesIO(), "text", b"\t"))
    with pytest.raises(OSError, match="disk full") as info:
        step.reduce_into([lines], _BrokenWriter())  # type: ignore[arg-type]
    assert not isinstance(info.value, RecordError)


def test_spill_files_live_in_a_folder_made_at_the_first_spill_and_removed_at_close(
    tmp_path: Path,
) -> None:
    """Most tasks never spill: they leave no folder behind, even when not closed."""
    lines = [b"w%d\t1" % i for i in range(5_000)]
    with LineBuffer(RecordFormat(), 64 * 1024**2, spill_dir=str(tmp_path)) as buffer:
        buffer.add_lines(lines)
        assert list(buffer.partitions()) and not list(tmp_path.iterdir())
    with LineBuffer(RecordFormat(), SMALL, spill_dir=str(tmp_path)) as buffer:
        for first in range(0, len(lines), 500):
            buffer.add_lines(lines[first : first + 500])
        assert buffer.spills and [p.name[:10] for p in tmp_path.iterdir()] == ["amr-spill-"]
        assert b"".join(b"".join(ls) for _, ls in buffer.partitions()) == b"".join(sorted(lines))
    assert not list(tmp_path.iterdir())


def test_line_buffer_groups_and_charges_lines_as_documented() -> None:
    """Every value in arrival order, charged what the accounting says (a new key: its
    bytes + KEY_OVERHEAD; a value: SLOT, and its bytes + BYTES_HEADER if over one byte),
    lines with no TAB or two among them."""
    from airflow_mapreduce.worker.line_buffer import BYTES_HEADER, KEY_OVERHEAD, SLOT

    rng = random.Random(8)
    words = [b"w%d" % i for i in range(400)]
    batches = [
        [b"%s\t%d" % (rng.choice(words), rng.choice([1, 1, 7, 12345])) for _ in range(2_000)],
        [b"new\t1", b"new\t2", b"w1\t3", b"new\t"],  # a new key twice, an empty value
        [b"w2", b"w3\ta\tb", b"\t5"],  # no TAB, two TABs, an empty key
    ]
    buffer = LineBuffer(RecordFormat(), 64 * 1024**2)
    expected: dict[bytes, list[bytes | None]] = {}
    charged = 0
    for batch in batches:
        buffer.add_lines(batch)
        for line in batch:
            key, found, value = line.partition(b"\t")
            if key not in expected:
                expected[key] = []
                charged += len(key) + KEY_OVERHEAD
            expected[key].append(value if found else None)
            charged += SLOT + (len(value) + BYTES_HEADER if len(value) > 1 else 0)
        assert buffer._groups == expected
        assert buffer.used == charged
    buffer.close()


def hadoop_key(line: bytes, fields: int = 1) -> bytes:
    parts = line.split(b"\t")
    return b"\t".join(parts[:fields]) if len(parts) > fields else line


def test_presorted_lines_keep_their_order_when_it_is_key_order() -> None:
    """A combiner's output after sort: in key order, some keys twice with values in no
    order, lines without a TAB. Each partition is exactly its lines in arrival order: a
    key's lines are not reordered by value. (Spilled, merges may order them by value.)"""
    rng = random.Random(3)
    keys = sorted({b"k%d" % rng.randrange(10**6) for _ in range(20_000)} | {b"", b"k\x01"})
    lines = []
    for key in keys:
        lines.append(key if rng.random() < 0.05 else key + b"\t%d" % rng.randrange(100))
        if rng.random() < 0.1:
            lines.append(key + b"\t%d" % rng.randrange(100))
    fmt = RecordFormat(num_partitions=3)
    buffer = PresortedLineBuffer(fmt, 64 * 1024**2)
    for first in range(0, len(lines), 1000):
        buffer.add_lines(lines[first : first + 1000])
    parts = drained(buffer)
    expected: dict[int, list[bytes]] = {p: [] for p in range(3)}
    for line in lines:
        expected[zlib.crc32(hadoop_key(line)) % 3].append(line)
    assert parts == expected


def test_presorted_lines_are_sorted_by_the_comparator_and_stably() -> None:
    """A numeric, descending comparator on the key's second field (key bytes break ties):
    lines arriving in ascending order come out reversed; the two lines of each key keep
    their arrival order."""
    from airflow_mapreduce.job.dataplane import SortKey

    comparator = [SortKey(field=2, numeric=True, reverse=True)]
    fmt = RecordFormat(b"\t", 2, 1, num_partitions=2, comparator=comparator)
    lines = [b"u%d\t%d\tv%d" % (i % 3, i // 6, i) for i in range(3_000)]
    buffer = PresortedLineBuffer(fmt, 64 * 1024**2)
    buffer.add_lines(lines)
    parts = drained(buffer)
    assert collections.Counter(line for ls in parts.values() for line in ls) == (
        collections.Counter(lines)
    )
    for partition, got in parts.items():
        mine = [line for line in lines if zlib.crc32(line.split(b"\t")[0]) % 2 == partition]
        fields = [line.split(b"\t") for line in mine]
        order = sorted(range(len(mine)), key=lambda i: (-int(fields[i][1]), fields[i][:2]))
        assert got == [mine[i] for i in order]
