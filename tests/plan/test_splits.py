from __future__ import annotations

import gzip
import io
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_mapreduce.errors import PlanError
from airflow_mapreduce.plan.splits import group_splits, list_input, plan_splits
from airflow_mapreduce.storage import FileSystems
from airflow_mapreduce.worker.records import read_split, split_lines


def reference_lines(data: bytes) -> list[bytes]:
    """Lines as Python's binary readlines() sees them, minus one LF or CRLF ending."""
    lines = io.BytesIO(data).readlines()
    return [line.removesuffix(b"\n").removesuffix(b"\r") for line in lines]


def lines_via_splits(files: FileSystems, uri: str, split_size: int) -> list[bytes]:
    found = []
    for split in plan_splits(files, uri, split_size):
        found += [line for _, line in split_lines(*reversed(read_split(files, split)))]
    return found


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=40),
    endings=st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=1, max_size=5),
    final_newline=st.booleans(),
    split_size=st.integers(min_value=1, max_value=200),
)
def test_every_record_exactly_once_at_any_split_size(
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[bytes],
    endings: list[bytes],
    final_newline: bool,
    split_size: int,
) -> None:
    body = b"".join(line + endings[i % len(endings)] for i, line in enumerate(lines))
    if lines and not final_newline:
        body = body.removesuffix(endings[(len(lines) - 1) % len(endings)])
    path = tmp_path_factory.mktemp("split") / "input.txt"
    path.write_bytes(body)
    found = lines_via_splits(FileSystems(), f"file://{path}", split_size)
    assert found == reference_lines(body)


def test_offsets_point_at_line_starts(tmp_path: Path) -> None:
    data = b"alpha\r\nbeta\ngamma"
    (tmp_path / "f.txt").write_bytes(data)
    files = FileSystems()
    found = []
    for split in plan_splits(files, f"file://{tmp_path}", 4):
        found += list(split_lines(*reversed(read_split(files, split))))
    assert found == [(0, b"alpha"), (7, b"beta"), (12, b"gamma")]
    assert all(data[offset:].startswith(line) for offset, line in found)


def test_compressed_files_are_one_whole_split(tmp_path: Path) -> None:
    text = b"".join(b"line %d\n" % i for i in range(5000))
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(text))
    files = FileSystems()
    [split] = plan_splits(files, f"file://{tmp_path}", 100)
    assert split.length is None and split.compression == "gzip"
    assert read_split(files, split) == (0, text)


def test_hidden_and_underscore_files_are_not_input(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_bytes(b"x\n")
    (tmp_path / "_SUCCESS").write_bytes(b"")
    (tmp_path / ".hidden").write_bytes(b"y\n")
    splits = plan_splits(FileSystems(), f"file://{tmp_path}", 10)
    assert [s.uri for s in splits] == [f"file://{tmp_path}/data.txt"]


def test_input_matching_nothing_says_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match=r"matched no objects; expected a file, a folder"):
        plan_splits(FileSystems(), f"file://{tmp_path}/missing/*.txt", 10)


def test_grouping_caps_tasks_and_keeps_every_split_once(tmp_path: Path) -> None:
    rng = random.Random(3)
    for i in range(30):
        (tmp_path / f"f{i:02d}.txt").write_bytes(b"x" * rng.randint(1, 5000) + b"\n")
    files = FileSystems()
    splits = plan_splits(files, f"file://{tmp_path}", 1000)
    groups = group_splits(splits, max_tasks=7, sizes={}, target_bytes=1000)
    assert len(groups) == 7
    flat = [s for g in groups for s in g]
    assert sorted(flat, key=lambda s: (s.uri, s.offset)) == sorted(
        splits, key=lambda s: (s.uri, s.offset)
    )
    loads = [sum(s.length or 0 for s in g) for g in groups]
    assert max(loads) - min(loads) <= max(s.length or 0 for s in splits)
    assert group_splits(splits, 7, {}, 1000) == groups  # deterministic


def test_small_objects_share_tasks(tmp_path: Path) -> None:
    for i in range(40):
        (tmp_path / f"f{i:02d}.txt").write_bytes(b"y" * 99 + b"\n")  # 100 bytes each
    splits = plan_splits(FileSystems(), f"file://{tmp_path}", 1000)
    groups = group_splits(splits, max_tasks=256, sizes={}, target_bytes=1000)
    assert len(groups) == 4  # 4000 bytes at 1000 bytes per task
    assert sorted(s.uri for g in groups for s in g) == sorted(s.uri for s in splits)


def test_globs_and_files_are_taken_exactly_as_matched(tmp_path: Path) -> None:
    for name in ("_private.py", "public.py", ".hidden.py"):
        (tmp_path / name).write_bytes(b"x\n")
    files = FileSystems()
    matched = {s.uri for s in plan_splits(files, f"file://{tmp_path}/*.py", 10)}
    # fsspec's glob (unlike a shell's) lets '*' match a leading dot too.
    assert matched == {f"file://{tmp_path}/{n}" for n in ("_private.py", "public.py", ".hidden.py")}
    [single] = plan_splits(files, f"file://{tmp_path}/_private.py", 10)
    assert single.uri == f"file://{tmp_path}/_private.py"


def test_hidden_objects_under_a_folder_are_reported_not_dropped_silently(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_bytes(b"x\n")
    (tmp_path / "_temporary").mkdir()
    (tmp_path / "_temporary" / "part-0").write_bytes(b"y\n")
    inputs, skipped = list_input(FileSystems(), f"file://{tmp_path}/")
    assert inputs == [f"file://{tmp_path}/data.txt"]
    assert skipped == [f"file://{tmp_path}/_temporary/part-0"]
