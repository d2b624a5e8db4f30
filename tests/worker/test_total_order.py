"""Total-order partitioning (partitioner.kind total_order) in the worker: split points
picked from a sample, and every buffer sending a key to its range of the key order."""

from __future__ import annotations

import collections
import itertools
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_mapreduce.job.dataplane import DataPlane, SortKey
from airflow_mapreduce.job.models import StepSpec
from airflow_mapreduce.plan.tasks import InputSplit, JobRuntime, SamplePiece, SampleTaskSpec
from airflow_mapreduce.storage import FileSystems
from airflow_mapreduce.worker.codec import encode_json
from airflow_mapreduce.worker.keys import RecordFormat
from airflow_mapreduce.worker.line_buffer import LineBuffer, PresortedLineBuffer
from airflow_mapreduce.worker.pair_buffer import PairBuffer
from airflow_mapreduce.worker.sampler import KeySample, pick_split_points, run_sample_task
from airflow_mapreduce.worker.spill import MapOutputBuffer

SMALL = 64 * 1024  # forces spills

# Key fields: bytes of every kind (NUL, invalid UTF-8, numbers and near-numbers), no TAB
# (the separator) and no LF (the record's end).
FIELD = st.one_of(
    st.binary(max_size=6).map(lambda b: b.replace(b"\t", b"").replace(b"\n", b"")),
    st.sampled_from([b"", b"0", b"10", b"9", b"-2.5", b"1e3", b"nan", b"inf", b" 7", b"abc"]),
    st.integers(-1000, 1000).map(lambda n: str(n).encode()),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda x: repr(x).encode()),
)
# A value may hold TABs: only the first key_fields separators cut the key.
VALUE = st.binary(max_size=8).map(lambda b: b.replace(b"\n", b"\t"))


@st.composite
def streaming_formats(draw: st.DrawFn) -> tuple[int, list[SortKey]]:
    key_fields = draw(st.integers(1, 3))
    fields = draw(st.lists(st.integers(1, key_fields), max_size=3, unique=True))
    comparator = [
        SortKey(field=f, numeric=draw(st.booleans()), reverse=draw(st.booleans())) for f in fields
    ]
    return key_fields, comparator


def assert_monotone(fmt: RecordFormat, keys: list[bytes], points: list[bytes]) -> None:
    """Along the key order, partitions never go down; a split point opens its partition."""
    ordered = sorted(keys, key=fmt.key_order)
    partitions = [fmt.partition_of_key(key) for key in ordered]
    assert partitions == sorted(partitions)
    assert all(0 <= p < fmt.num_partitions for p in partitions)
    for index, point in enumerate(points):
        assert fmt.partition_of_key(point) == index + 1  # equal keys: the partition above
    # Every key of partition p lies in [points[p-1], points[p]) of the order.
    orders = [fmt.key_order(point) for point in points]
    for key, partition in zip(ordered, partitions, strict=True):
        order = fmt.key_order(key)
        assert partition == 0 or orders[partition - 1] <= order
        assert partition == len(points) or order < orders[partition]


@settings(max_examples=300, deadline=None)
@given(
    shape=streaming_formats(),
    rows=st.lists(st.tuples(st.lists(FIELD, min_size=1, max_size=4), VALUE), max_size=60),
    sampled=st.integers(0, 60),
    num_partitions=st.integers(1, 9),
)
def test_streaming_partitions_are_monotone_in_the_comparators_order(
    shape: tuple[int, list[SortKey]],
    rows: list[tuple[list[bytes], bytes]],
    sampled: int,
    num_partitions: int,
) -> None:
    key_fields, comparator = shape
    lines = [b"\t".join(fields) + b"\t" + value for fields, value in rows]
    plain = RecordFormat(b"\t", key_fields, comparator=comparator)
    keys = [plain.key_of(line) for line in lines]
    points = pick_split_points(keys[:sampled], num_partitions, plain.key_order)
    assert len(points) <= num_partitions - 1
    assert [plain.key_order(p) for p in points] == sorted({plain.key_order(p) for p in points})
    fmt = RecordFormat(
        b"\t", key_fields, num_partitions=num_partitions, comparator=comparator, split_points=points
    )
    assert not fmt.partitions_by_crc32
    assert_monotone(fmt, keys, points)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            st.text(max_size=5),  # TABs, NULs and lone surrogates (undecodable input) too
            st.integers(-(10**6), 10**6),
            st.floats(allow_nan=False),
            st.lists(st.integers(), max_size=2),
        ),
        max_size=60,
    ),
    num_partitions=st.integers(1, 9),
)
def test_json_keys_partition_monotone_in_their_encodings_order(
    values: list[Any], num_partitions: int
) -> None:
    keys = [encode_json(value) for value in values]
    points = pick_split_points(keys, num_partitions, lambda key: key)
    runtime = JobRuntime(
        mapper=StepSpec(callable="m:f"),
        num_partitions=num_partitions,
        codec="json",
        split_points=points,
    )
    assert_monotone(RecordFormat.of(runtime), keys, points)


@settings(max_examples=200, deadline=None)
@given(
    points=st.lists(st.binary(max_size=3), max_size=6),
    keys=st.lists(st.binary(max_size=3), max_size=40),
)
def test_repeated_or_unsorted_split_points_in_a_spec_still_give_ranges(
    points: list[bytes], keys: list[bytes]
) -> None:
    """A spec written by hand may repeat split points: the ranges between equal points are
    simply empty, every key still has one partition, in order."""
    points = sorted(points)
    fmt = RecordFormat(num_partitions=len(points) + 1, split_points=points)
    ordered = sorted(keys)
    partitions = [fmt.partition_of_key(key) for key in ordered]
    assert partitions == sorted(partitions)
    for key, partition in zip(ordered, partitions, strict=True):
        assert partition == sum(point <= key for point in points)


def test_more_split_points_than_partitions_is_refused() -> None:
    with pytest.raises(ValueError, match="expected fewer split points than partitions"):
        RecordFormat(num_partitions=2, split_points=[b"a", b"b"])


def test_split_points_cut_a_uniform_sample_into_equal_ranges() -> None:
    keys = [f"{n:05d}".encode() for n in random.Random(1).sample(range(100_000), 10_000)]
    points = pick_split_points(keys, 8, lambda key: key)
    assert len(points) == 7
    fmt = RecordFormat(num_partitions=8, split_points=points)
    sizes = collections.Counter(map(fmt.partition_of_key, keys))
    assert sorted(sizes) == list(range(8))
    assert max(sizes.values()) - min(sizes.values()) <= 2


def test_a_skewed_sample_gives_distinct_split_points_and_one_partition_per_hot_key() -> None:
    rng = random.Random(3)
    keys = [b"hot"] * 9000 + [b"cold%04d" % rng.randrange(10_000) for _ in range(1000)]
    rng.shuffle(keys)
    points = pick_split_points(keys, 10, lambda key: key)
    assert points == sorted(set(points))  # no split point twice: no range left empty by it
    fmt = RecordFormat(num_partitions=10, split_points=points)
    assert len({fmt.partition_of_key(b"hot") for _ in range(3)}) == 1
    # Keys below and above the hot one still spread over the other partitions.
    assert len({fmt.partition_of_key(key) for key in keys}) == len(points) + 1


def test_fewer_distinct_keys_than_partitions_leave_the_last_partitions_empty() -> None:
    points = pick_split_points([b"b", b"a", b"b", b"a"], 6, lambda key: key)
    assert points == [b"a", b"b"]
    assert pick_split_points([], 4, lambda key: key) == []
    assert pick_split_points([b"x"] * 5, 1, lambda key: key) == []


def test_the_key_sample_thins_evenly_and_stays_under_its_cap() -> None:
    sample = KeySample(RecordFormat(), cap=100)
    for start in range(0, 10_000, 37):  # blocks of odd sizes
        sample.add_lines([b"%05d\tv" % n for n in range(start, min(start + 37, 10_000))])
    assert sample.seen == 10_000
    assert 50 <= len(sample.keys) <= 100
    numbers = [int(key) for key in sample.keys]
    gaps = {b - a for a, b in itertools.pairwise(numbers)}
    assert len(gaps) == 1  # one stride over the whole input: evenly spread


def records_of(buffer: MapOutputBuffer) -> dict[int, list[bytes]]:
    try:
        return {partition: list(lines) for partition, lines in buffer.partitions()}
    finally:
        buffer.close()


def numeric_reverse_format(points: list[bytes], n: int) -> RecordFormat:
    comparator = [SortKey(field=1, numeric=True, reverse=True)]
    return RecordFormat(b"\t", 1, num_partitions=n, comparator=comparator, split_points=points)


@pytest.mark.parametrize("kind", ["lines", "presorted", "pairs"])
def test_every_sort_buffer_sends_records_to_their_keys_range(kind: str) -> None:
    rng = random.Random(5)
    numbers = [rng.randrange(-5000, 5000) for _ in range(20_000)]
    if kind == "pairs":  # Python callables: JSON keys, in their encodings' order
        fmt = RecordFormat(num_partitions=5, lines_sort_as_keys=True, split_points=[])
        keys = sorted({encode_json(n) for n in numbers})
        points = [keys[len(keys) * i // 5] for i in range(1, 5)]
        fmt = RecordFormat(num_partitions=5, lines_sort_as_keys=True, split_points=points)
        buffer: MapOutputBuffer = PairBuffer(fmt, SMALL)
        buffer.add_pairs([(n, "v") for n in numbers])  # type: ignore[attr-defined]
    else:
        points = [b"2500", b"1000", b"-0.5", b"-2500"]  # descending numbers: reverse order
        fmt = numeric_reverse_format(points, 5)
        buffer = LineBuffer(fmt, SMALL) if kind == "lines" else PresortedLineBuffer(fmt, SMALL)
        buffer.add_lines([b"%d\tv%d" % (n, i) for i, n in enumerate(numbers)])  # type: ignore[attr-defined]
    parts = records_of(buffer)
    assert sum(map(len, parts.values())) == len(numbers)
    for partition, lines in parts.items():
        keys = [fmt.key_of(line) for line in lines]
        assert all(fmt.partition_of_key(key) == partition for key in keys)
        assert [fmt.key_order(k) for k in keys] == sorted(fmt.key_order(k) for k in keys)
    assert all(parts[p] for p in range(5))  # the split points cut where the keys are


def sample_spec(tmp_path: Path, mapper: StepSpec, codec: str, **dataplane: Any) -> SampleTaskSpec:
    data = tmp_path / "in.txt"
    data.write_bytes(b"".join(b"%d\tline %d\n" % (n * 7919 % 1000, n) for n in range(2000)))
    size = data.stat().st_size
    pieces = [
        SamplePiece(split=InputSplit(uri=f"file://{data}", offset=o, length=size // 4), records=50)
        for o in range(0, size - size // 4 + 1, size // 4)
    ]
    runtime = JobRuntime(
        mapper=mapper,
        num_partitions=4,
        codec=codec,  # type: ignore[arg-type]
        dataplane=DataPlane.model_validate(dataplane),
    )
    return SampleTaskSpec(
        dag_id="d",
        run_id="r",
        job=runtime,
        pieces=pieces,
        max_seconds=60,
        manifest_uri=f"file://{tmp_path}/sample.json",
    )


def test_the_sampler_runs_a_streaming_mapper_on_its_pieces(tmp_path: Path) -> None:
    # The mapper makes the key: the number, negated text-wise by awk, as numbers descending.
    spec = sample_spec(
        tmp_path,
        StepSpec(command=["awk", "-F\t", '{print $1 "\\t" $2}']),
        "raw",
        comparator={"keys": [{"field": 1, "numeric": True, "reverse": True}]},
    )
    manifest = run_sample_task(FileSystems(), spec)
    assert manifest.records == 200 and manifest.keys == 200 and not manifest.stopped_early
    assert len(manifest.split_points) == 3
    values = [float(point) for point in manifest.split_points]
    assert values == sorted(values, reverse=True)  # the comparator's order
    written = json.loads((tmp_path / "sample.json").read_text())
    assert len(written["split_points"]) == 3


def test_the_sampler_runs_a_python_mapper_and_stops_at_its_time_bound(tmp_path: Path) -> None:
    spec = sample_spec(tmp_path, StepSpec(callable="tests.worker.test_total_order:slow"), "json")
    spec = spec.model_copy(update={"max_seconds": 0.3})
    started = time.monotonic()
    manifest = run_sample_task(FileSystems(), spec)
    assert time.monotonic() - started < 5
    assert manifest.stopped_early
    assert 0 < manifest.records < 200
    assert all(point.isdigit() for point in manifest.split_points)  # JSON ints


def slow(_key: Any, line: str) -> Any:
    """A mapper slow enough for the time bound: a piece (50 records) takes 0.25 s."""
    time.sleep(0.005)
    yield int(line.partition("\t")[0]), 1


def test_split_points_survive_the_task_spec_and_agree_across_processes(tmp_path: Path) -> None:
    """Any bytes (NUL, invalid UTF-8) round-trip through the spec's JSON, and a worker
    process with another hash seed puts every key in the same partition (no hash())."""
    points = [b"\x00a", b"\x80\xff", b"\xc3(\t"]
    runtime = JobRuntime(
        mapper=StepSpec(command=["cat"]), num_partitions=4, codec="raw", split_points=points
    )
    spec = tmp_path / "runtime.json"
    spec.write_text(runtime.model_dump_json())
    assert JobRuntime.model_validate_json(spec.read_text()) == runtime
    keys = [bytes([a, b]) for a in range(0, 256, 7) for b in (0, 40, 200)]
    here = [RecordFormat.of(runtime).partition_of_key(key) for key in keys]
    assert len(set(here)) == 4
    code = (
        "import sys; from airflow_mapreduce.plan.tasks import JobRuntime; "
        "from airflow_mapreduce.worker.keys import RecordFormat; "
        f"fmt = RecordFormat.of(JobRuntime.model_validate_json(open({str(spec)!r}).read())); "
        f"print([fmt.partition_of_key(k) for k in {keys!r}])"
    )
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == str(here)
