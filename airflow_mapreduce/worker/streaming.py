"""Running a Hadoop Streaming command: records in on stdin, records out on stdout.

stderr lines ``reporter:counter:<group>,<counter>,<amount>`` update counters and
``reporter:status:<message>`` sets the status; other stderr lines pass through to the
task log and the last ones are quoted if the command fails.

A command that exits 0 without reading all of its input fails: the records it left
would be lost. A broken pipe alone would tell only when the input outgrows the pipe
buffer, so the worker keeps the read end of the command's stdin open too: once the
command has exited, whatever is left in the pipe (and any input not fed yet) was never
read. A command that read everything leaves an empty pipe, at its end of input.
"""

from __future__ import annotations

import collections
import io
import os
import subprocess
import sys
import threading
from collections.abc import Generator, Iterable, Iterator, Mapping
from typing import IO, cast

from airflow_mapreduce.errors import CommandFailedError, TaskFailedError
from airflow_mapreduce.plan.tasks import Counters
from airflow_mapreduce.worker import memory

STDERR_TAIL = 20
PIPE_READ = 1 << 20
_DRAIN_READ = 1 << 16


def lines_of(chunks: Iterable[bytes]) -> Iterator[list[bytes]]:
    """The lines (without LF) of LF-terminated text given as arbitrary pieces, a list per
    piece."""
    tail = b""
    for chunk in chunks:
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        yield lines


def run_command_chunks(
    argv: list[str],
    chunks: Iterable[bytes],
    *,
    role: str,
    what: str,
    counters: Counters,
    env: Mapping[str, str] | None = None,
) -> Generator[bytes, None, None]:
    """Feed `chunks` to the command's stdin (in a thread) and yield its stdout as it comes,
    in pipe reads that need not end at a line end; the last one always ends with LF (a
    final line without one is a record all the same)."""
    stdin_read, stdin_write = os.pipe()
    try:
        proc = subprocess.Popen(
            argv,
            stdin=stdin_read,  # still open here: what the command leaves is counted
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=command_env(env),
        )
    except OSError as exc:
        os.close(stdin_read)
        os.close(stdin_write)
        raise TaskFailedError(
            f"{what}: cannot start {argv}: {exc}. The command must exist in the worker "
            "(image or local folder) and be executable."
        ) from None
    assert proc.stdout and proc.stderr
    watch = memory.CommandWatch(proc)
    stdout = cast(io.BufferedReader, proc.stdout)
    feeder = _Feeder(stdin_write, chunks)
    stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
    reader = threading.Thread(
        target=_read_stderr, args=(proc.stderr, counters, stderr_tail), daemon=True
    )
    feeder.start()
    reader.start()
    finished = False
    try:
        ends_line = True
        while chunk := stdout.read1(PIPE_READ):
            ends_line = chunk.endswith(b"\n")
            yield chunk
        if not ends_line:
            yield b"\n"
        finished = True
    finally:
        if not finished:
            proc.kill()
        returncode = watch.wait()
        unread = feeder.stop(stdin_read)
        reader.join()
    if feeder.error is not None:
        raise feeder.error
    if returncode != 0:
        quoted = "\n".join(f"    {line}" for line in stderr_tail) or "    (no stderr output)"
        raise CommandFailedError(
            f"{what}: command {argv} exited with code {returncode}; last stderr lines:\n{quoted}",
            role,
        )
    if unread:
        if feeder.unfed:
            left = f"at least {unread:,} bytes of its input (it exited before the rest was fed)"
        else:
            left = f"{unread:,} of the {feeder.written:,} bytes of its input"
        raise CommandFailedError(
            f"{what}: command {argv} exited (code 0) before reading all of its input: it "
            f"left {left} unread, records that would be lost. A streaming {role} must "
            "read stdin to its end, also input it ignores: e.g. `for line in sys.stdin:` "
            "in Python, or `cat >/dev/null` after a shell command that stops early.",
            role,
        )


def command_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The worker's environment plus `extra`, without PYTHONUNBUFFERED (unless `extra` sets it).

    Container images and CI often set PYTHONUNBUFFERED=1 for prompt logs; inherited by a
    Python streaming command it turns every print() into a system call on the pipe (5x
    slower word count here). stderr stays line-buffered anyway (Python >= 3.9), so
    counters and status lines still arrive at once.
    """
    merged = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    merged.update(extra or {})
    return merged


class _Feeder(threading.Thread):
    """Writes the chunks to the command's stdin pipe, then closes it (the command's end
    of input). Once the command has exited, stop() counts what it did not read."""

    def __init__(self, stdin_write: int, chunks: Iterable[bytes]) -> None:
        super().__init__(daemon=True)
        self.stdin_write = stdin_write
        self.chunks = chunks
        self.error: BaseException | None = None
        self.written = 0  # bytes written into the pipe
        self.unfed = 0  # bytes of the chunk not written because the command had exited
        self._exited = threading.Event()

    def run(self) -> None:
        try:
            for chunk in self.chunks:
                if chunk and self._exited.is_set():
                    self.unfed = len(chunk)  # records lost already: the rest is not read
                    break
                self._write(chunk)
        except BaseException as exc:  # surfaced by run_command_chunks after the process ends
            self.error = exc
        finally:
            os.close(self.stdin_write)

    def _write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:  # a signal may cut a write short
            written = os.write(self.stdin_write, view)
            self.written += written
            view = view[written:]

    def stop(self, stdin_read: int) -> int:
        """Once the command has exited: the input bytes it did not read. The pipe is read
        from the end the worker kept until this thread closes the other (a write blocked
        on a full pipe goes through; the next chunk is only counted). A command that read
        to its end of input leaves an empty, closed pipe: one read, at once."""
        self._exited.set()
        left = 0
        buffer = bytearray(_DRAIN_READ)
        try:
            while read := os.readv(stdin_read, [buffer]):
                left += read
        finally:
            os.close(stdin_read)
        self.join()
        return left + self.unfed


def _read_stderr(stream: IO[bytes], counters: Counters, tail: collections.deque[str]) -> None:
    for raw in stream:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        if line.startswith("reporter:counter:"):
            if _add_counter(counters, line.removeprefix("reporter:counter:")):
                continue
        elif line.startswith("reporter:status:"):
            print(f"status: {line.removeprefix('reporter:status:')}", file=sys.stderr, flush=True)
            continue
        tail.append(line)
        print(line, file=sys.stderr, flush=True)


def _add_counter(counters: Counters, spec: str) -> bool:
    parts = spec.rsplit(",", 2)
    if len(parts) != 3:
        return False
    group, name, amount = parts
    try:
        value = int(amount)
    except ValueError:
        return False
    bucket = counters.setdefault(group, {})
    bucket[name] = bucket.get(name, 0) + value
    return True
