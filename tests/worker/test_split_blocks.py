"""Reading a split in blocks (bounded memory) yields exactly the lines read_split yields."""

from __future__ import annotations

import bz2

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_mapreduce.plan.splits import plan_splits
from airflow_mapreduce.storage import FileSystems
from airflow_mapreduce.worker.records import iter_split_blocks, read_split, split_lines


@settings(max_examples=120, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=40),
    crlf=st.booleans(),
    final_newline=st.booleans(),
    split_size=st.integers(min_value=1, max_value=300),
    block_size=st.integers(min_value=1, max_value=64),
    compressed=st.booleans(),
)
def test_blocks_hold_the_same_lines_and_offsets_as_the_whole_split(
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[bytes],
    crlf: bool,
    final_newline: bool,
    split_size: int,
    block_size: int,
    compressed: bool,
) -> None:
    eol = b"\r\n" if crlf else b"\n"
    data = eol.join(lines) + (eol if final_newline and lines else b"")
    folder = tmp_path_factory.mktemp("blocks")
    path = folder / ("in.txt.bz2" if compressed else "in.txt")
    path.write_bytes(bz2.compress(data) if compressed else data)
    files = FileSystems()
    for split in plan_splits(files, f"file://{path}", split_size) if data else []:
        start, whole = read_split(files, split)
        expected = list(split_lines(whole, start))
        got = [
            item
            for offset, block in iter_split_blocks(files, split, block_size)
            for item in split_lines(block, offset)
        ]
        assert got == expected
