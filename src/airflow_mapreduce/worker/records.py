"""Reading records: line-aligned byte-range splits and sorted runs, in large blocks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from fsspec.utils import read_block

from airflow_mapreduce.plan.tasks import InputSplit
from airflow_mapreduce.storage import FileSystems
from airflow_mapreduce.worker.codec import split_record

READ_BLOCK = 1 << 20


def read_split(files: FileSystems, split: InputSplit) -> bytes:
    """The bytes of every line that starts inside the split (see plan.splits)."""
    if split.length is None:
        with files.open_read(split.uri, compression=split.compression) as f:
            return f.read()
    with files.open_read(split.uri) as f:
        block: bytes = read_block(f, split.offset, split.length, delimiter=b"\n")
        return block


def split_lines(block: bytes, start_offset: int = 0) -> Iterator[tuple[int, bytes]]:
    """(byte offset, line) pairs; LF or CRLF endings, last line with or without one."""
    position = 0
    for raw in block.split(b"\n"):
        if position >= len(block):
            break  # the empty tail after a final newline is not a record
        line = raw[:-1] if raw.endswith(b"\r") else raw
        yield start_offset + position, line
        position += len(raw) + 1


def as_streaming_input(block: bytes) -> bytes:
    """Input for a streaming command: LF-terminated lines, as Hadoop feeds them."""
    if b"\r\n" in block:
        block = block.replace(b"\r\n", b"\n")
    if block and not block.endswith(b"\n"):
        block += b"\n"
    return block


def iter_stream_lines(f: IO[bytes]) -> Iterator[bytes]:
    """Lines (without LF) of a stream, read in large blocks rather than line by line."""
    tail = b""
    while chunk := f.read(READ_BLOCK):
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        yield from lines
    if tail:
        yield tail


def iter_run(files: FileSystems, uri: str) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) records of one sorted run written by a map task."""
    with files.open_read(uri) as f:
        for line in iter_stream_lines(f):
            yield split_record(line)
