"""Reading records: line-aligned byte-range splits and sorted runs, in large blocks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from airflow_mapreduce.plan.tasks import InputSplit
from airflow_mapreduce.storage import FileSystems

READ_BLOCK = 1 << 20
SCAN_BLOCK = 1 << 16
SPLIT_BLOCK = 1 << 20
MIN_MERGE_BLOCK = 8 << 10


def read_split(files: FileSystems, split: InputSplit) -> tuple[int, bytes]:
    """(start offset, bytes) of every line that starts inside the split (see plan.splits)."""
    if split.length is None:
        with files.open_read(split.uri, compression=split.compression) as f:
            return 0, f.read()
    with files.open_read(split.uri) as f:
        start = _next_line_start(f, split.offset)
        end = _next_line_start(f, split.offset + split.length)
        f.seek(start)
        return start, f.read(end - start) if end > start else b""


def iter_split_blocks(
    files: FileSystems, split: InputSplit, block_size: int = SPLIT_BLOCK
) -> Iterator[tuple[int, bytes]]:
    """The split's lines (as in read_split) in blocks of whole lines, with their offsets.

    Memory stays at about one block whatever the split size; offsets of a compressed
    file count decompressed bytes.
    """
    if split.length is None:
        with files.open_read(split.uri, compression=split.compression) as f:
            yield from _line_blocks(iter(lambda: f.read(block_size), b""), 0)
        return
    with files.open_read(split.uri) as f:
        start = _next_line_start(f, split.offset)
        end = _next_line_start(f, split.offset + split.length)
        f.seek(start)

        def chunks() -> Iterator[bytes]:
            position = start
            while position < end and (chunk := f.read(min(block_size, end - position))):
                position += len(chunk)
                yield chunk

        yield from _line_blocks(chunks(), start)


def _line_blocks(chunks: Iterator[bytes], offset: int) -> Iterator[tuple[int, bytes]]:
    tail = b""
    for chunk in chunks:
        data = tail + chunk if tail else chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            tail = data  # a line longer than a block: keep reading
            continue
        yield offset, data[:cut]
        offset += cut
        tail = data[cut:]
    if tail:
        yield offset, tail


def _next_line_start(f: IO[bytes], position: int) -> int:
    """The first line start at or after `position`: a boundary both neighbours agree on."""
    if position == 0:
        return 0
    f.seek(position - 1)  # a line starts at `position` if the byte before it is LF
    scanned = position - 1
    while chunk := f.read(SCAN_BLOCK):
        newline = chunk.find(b"\n")
        if newline >= 0:
            return scanned + newline + 1
        scanned += len(chunk)
    return scanned


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


def merge_read_block(budget: int, runs: int) -> int:
    """Read block per sorted run when merging `runs` of them within `budget` bytes.

    A block's lines cost about 4x its bytes as Python objects, and a merge holds one
    block per run at once.
    """
    return max(MIN_MERGE_BLOCK, min(READ_BLOCK, budget // (8 * max(runs, 1))))


class Tally:
    """Counts records as blocks of them are read: no Python step per record."""

    def __init__(self) -> None:
        self.count = 0


def iter_stream_blocks(
    f: IO[bytes], block: int = READ_BLOCK, tally: Tally | None = None
) -> Iterator[list[bytes]]:
    """Lists of the lines (without LF) of a stream, one per `block` bytes read."""
    tail = b""
    while chunk := f.read(block):
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        if tally is not None:
            tally.count += len(lines)
        yield lines
    if tail:
        if tally is not None:
            tally.count += 1
        yield [tail]


def iter_run_blocks(
    files: FileSystems, uri: str, block: int = READ_BLOCK, tally: Tally | None = None
) -> Iterator[list[bytes]]:
    """Record lines of one sorted run written by a map task, as blocks of lines."""
    with files.open_read(uri) as f:
        yield from iter_stream_blocks(f, block, tally)
