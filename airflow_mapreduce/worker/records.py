"""Reading records: line-aligned byte-range splits and sorted runs, in large blocks."""

from __future__ import annotations

import gzip
import lzma
import sys
import zlib
from collections.abc import Iterator
from typing import IO

from airflow_mapreduce.errors import MapReduceError, TaskFailedError
from airflow_mapreduce.plan.tasks import InputSplit
from airflow_mapreduce.storage import FileSystems, protocol_of

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
    file count decompressed bytes. A split that cannot be read (storage unreachable,
    corrupt or truncated compressed data) fails naming it.
    """
    try:
        yield from _split_blocks(files, split, block_size)
    except MapReduceError:
        raise
    except Exception as exc:
        raise unreadable(
            f"input split {split.describe()}", split.uri, split.compression, exc
        ) from exc


def _split_blocks(
    files: FileSystems, split: InputSplit, block_size: int
) -> Iterator[tuple[int, bytes]]:
    if split.length is None:
        with files.open_read(split.uri, compression=split.compression) as f:
            yield from _line_blocks(iter(lambda: f.read(block_size), b""), 0)
        return
    with files.open_read(split.uri) as f:
        start = _next_line_start(f, split.offset)
        f.seek(start)
        length = split.offset + split.length - start  # <= 0: no line starts in the split
        yield from _line_blocks(_through_line_end(f, length, block_size), start)


def unreadable(what: str, uri: str, compression: str | None, exc: Exception) -> TaskFailedError:
    """The one-line error of data that cannot be read: corrupt compressed data, or
    storage failing (its own message names the endpoint it could not reach)."""
    found = f"{type(exc).__name__}: {exc}"
    if compression is not None and _is_corrupt_data(exc):
        return TaskFailedError(
            f"cannot read {what}: its {compression} data is corrupt or truncated ({found}). "
            "Replace or remove the file; its extension decides how it is decompressed, so "
            "a file that is not compressed must not end in .gz, .bz2, .xz or .zst."
        )
    if protocol_of(uri) == "file":
        fix = "Check that the file is still there and readable by the worker."
    else:
        fix = (
            "Check that the storage endpoint is reachable from the worker and its credentials "
            "(AWS_ENDPOINT_URL, AWS_* variables or the pod's service account, for s3://)."
        )
    return TaskFailedError(f"cannot read {what} from storage ({found}). {fix}")


def _is_corrupt_data(exc: Exception) -> bool:
    """Whether a decompressor raised `exc`. bz2 raises a bare OSError (no errno: storage's
    have one); a zstd module's error counts only where that module is loaded (fsspec uses
    backports.zstd, or compression.zstd from Python 3.14, where present, else zstandard)."""
    corrupt: tuple[type[Exception], ...] = (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile)
    for name in ("backports.zstd", "compression.zstd", "zstandard"):
        if (module := sys.modules.get(name)) is not None:
            corrupt += (module.ZstdError,)
    return isinstance(exc, corrupt) or (type(exc) is OSError and exc.errno is None)


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


def _through_line_end(f: IO[bytes], length: int, block_size: int) -> Iterator[bytes]:
    """`length` bytes from where `f` is, then on to the end of the line they end in (the
    line crossing a split's end is the split's): one pass, a read for a small file."""
    last = b"\n"
    while length > 0 and (chunk := f.read(min(block_size, length))):
        length -= len(chunk)
        last = chunk[-1:]
        yield chunk
    if last == b"\n":
        return
    while chunk := f.read(SCAN_BLOCK):
        newline = chunk.find(b"\n")
        if newline >= 0:
            yield chunk[: newline + 1]
            return
        yield chunk


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
        self.bytes = 0


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
            tally.bytes += len(chunk)
        yield lines
    if tail:
        if tally is not None:
            tally.count += 1
        yield [tail]


def iter_run_blocks(
    files: FileSystems, uri: str, block: int = READ_BLOCK, tally: Tally | None = None
) -> Iterator[list[bytes]]:
    """Record lines of one sorted run written by a map task, as blocks of lines."""
    try:
        with files.open_read(uri) as f:
            yield from iter_stream_blocks(f, block, tally)
    except MapReduceError:
        raise
    except Exception as exc:
        raise unreadable(f"map output {uri}", uri, None, exc) from exc
