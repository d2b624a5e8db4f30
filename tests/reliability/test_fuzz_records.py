"""Property-based fuzzing of the split planner and record codecs (hypothesis).

Reference results come from Python's own line splitting and json, not from the code under
test.
"""

from __future__ import annotations

import gzip
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_mapreduce.plan.splits import group_splits, plan_splits
from airflow_mapreduce.storage import FileSystems
from airflow_mapreduce.worker.codec import Codec
from airflow_mapreduce.worker.keys import RecordFormat
from airflow_mapreduce.worker.records import iter_run_blocks, read_split, split_lines
from airflow_mapreduce.worker.spill import write_lines

# Lines: any bytes but LF (CR included, also at the end, so CRLF-vs-CR edge cases arise).
LINE = st.binary(max_size=30).map(lambda b: b.replace(b"\n", b""))
ENDING = st.sampled_from([b"\n", b"\r\n"])
FILE = st.tuples(
    st.lists(st.tuples(LINE, ENDING), max_size=30), st.booleans(), st.booleans()
)  # (lines with endings, final newline, gzip)


def file_bytes(lines: list[tuple[bytes, bytes]], final_newline: bool) -> bytes:
    body = b"".join(line + eol for line, eol in lines)
    if lines and not final_newline:
        body = body[: -len(lines[-1][1])]
    return body


def reference_records(data: bytes) -> list[bytes]:
    return [line.removesuffix(b"\n").removesuffix(b"\r") for line in io.BytesIO(data).readlines()]


@settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    files=st.lists(FILE, min_size=1, max_size=4),
    split_size=st.integers(min_value=1, max_value=120),
    max_tasks=st.integers(min_value=1, max_value=6),
)
def test_many_files_any_split_size_every_record_once(
    tmp_path_factory: pytest.TempPathFactory,
    files: list[tuple[list[tuple[bytes, bytes]], bool, bool]],
    split_size: int,
    max_tasks: int,
) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    expected: dict[str, list[bytes]] = {}
    for index, (lines, final_newline, compress) in enumerate(files):
        data = file_bytes(lines, final_newline)
        name = f"in{index}.txt" + (".gz" if compress else "")
        (folder / name).write_bytes(gzip.compress(data) if compress else data)
        if data:
            expected[f"file://{folder}/{name}"] = reference_records(data)
    fs = FileSystems()
    splits = plan_splits(fs, f"file://{folder}", split_size)
    sizes = {s.uri: fs.size(s.uri) for s in splits if s.length is None}
    groups = group_splits(splits, max_tasks, sizes, target_bytes=split_size)
    assert len(groups) <= max_tasks
    found: dict[str, list[tuple[int, bytes]]] = {}
    for group in groups:
        for split in group:
            start, block = read_split(fs, split)
            found.setdefault(split.uri, []).extend(split_lines(block, start))
    for uri, records in expected.items():
        in_order = [line for _, line in sorted(found.get(uri, []))]
        assert in_order == records, uri


KEY = st.binary(max_size=20).filter(lambda b: b"\t" not in b and b"\n" not in b)
VALUE = st.binary(max_size=20).filter(lambda b: b"\n" not in b)


@settings(database=None)  # nothing written into the repository
@given(key=KEY, value=VALUE)
def test_record_join_split_round_trip(key: bytes, value: bytes) -> None:
    fmt = RecordFormat()
    line = fmt.join(key, value)
    assert b"\n" not in line
    assert fmt.split(line) == (key, value)


@settings(deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(st.tuples(KEY, VALUE), max_size=50))
def test_sorted_run_round_trip(tmp_path_factory: pytest.TempPathFactory, records) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("run") / "part-00000"
    fmt = RecordFormat()
    with path.open("wb") as f:
        assert write_lines(f, [fmt.join(k, v) for k, v in sorted(records)])[0] == len(records)
    blocks = iter_run_blocks(FileSystems(), f"file://{path}", block=7)  # lines across blocks
    assert [fmt.split(line) for block in blocks for line in block] == sorted(records)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)


@settings(database=None)  # nothing written into the repository
@given(obj=JSON)
def test_json_codec_round_trip_keeps_types_on_one_line(obj: object) -> None:
    codec = Codec("json")
    data = codec.encode(obj)
    assert b"\n" not in data and b"\t" not in data  # safe inside key<TAB>value lines
    assert codec.decode(data) == obj


@settings(database=None)  # nothing written into the repository
@given(text=st.text().filter(lambda t: "\n" not in t))
def test_raw_codec_round_trip_of_text(text: str) -> None:
    codec = Codec("raw")
    try:
        encoded = codec.encode(text)
    except UnicodeEncodeError:
        return  # lone surrogates are not text a command could have written
    assert codec.decode(encoded) == text


@settings(database=None)  # nothing written into the repository
@given(data=st.binary(max_size=40))
def test_raw_codec_keeps_undecodable_bytes(data: bytes) -> None:
    codec = Codec("raw")
    assert codec.encode(codec.decode(data)) == data
