"""The map side's sort by the system's `sort` command when a combiner follows.

Hadoop Streaming's classic shape is `mapper | sort | combiner`: the map output is
sorted so that each key's lines are adjacent, and the combiner shrinks it. The Python
sort buffer (LineBuffer) does that with a Python step per map output line, which is the
worker's main cost when a mapper writes one line per word (word count: 18 M lines for
160 MB). So when GNU sort is on the worker, the mapper's output goes to it as raw pipe
reads, sort's output goes to the combiner, and only the combiner's output (usually a
small fraction) reaches Python, where a PresortedLineBuffer partitions it: that output
is usually in key order already, so only a combiner that reorders costs a sort there.
Sort compares whole lines unless a line holds a byte below the separator (see
SortedCombine). It keeps to its share of the budget (`--buffer-size`), spilling sorted
runs to a private temporary folder itself. Its share is a quarter: it sorts as fast
with 4 MiB as with 64 (merging runs is cheap; small runs stay in the CPU caches), while
the line buffer holds Python objects, which cost more per byte.

Three differences from the Python buffer, all within Hadoop's contract: the combiner runs
once over the task's whole sorted output (not once per spill and partition), a key's
lines may reach it in another order than the mapper's, and
`spills` counts only the spills of the combiner's output (sort's are its own).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, NoReturn, Self

from airflow_mapreduce.errors import TaskFailedError
from airflow_mapreduce.worker import memory
from airflow_mapreduce.worker.keys import RecordFormat
from airflow_mapreduce.worker.line_buffer import PresortedLineBuffer
from airflow_mapreduce.worker.streaming import PIPE_READ

STDERR_QUOTED = 2000


@functools.cache
def gnu_sort() -> str | None:
    """The path of GNU sort (coreutils), or None: others may lack its options."""
    path = shutil.which("sort")
    if path is None:
        return None
    try:
        version = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return path if "GNU coreutils" in version else None


def groups_by_sort(fmt: RecordFormat) -> bool:
    """Whether GNU sort is here and can cut keys as `fmt` does: a one-byte separator
    (its --field-separator) that can be an argument (not NUL) and is not the line end."""
    return gnu_sort() is not None and len(fmt.separator) == 1 and fmt.separator not in b"\n\0"


def sort_argv(fmt: RecordFormat, budget: int, folder: str, by_key: bool) -> list[str]:
    """Whole lines in bytes order, or (by_key) keys cut by keys.RecordFormat's rule: the
    line up to its key_fields-th separator, all of it when it has fewer."""
    path = gnu_sort()
    assert path is not None and groups_by_sort(fmt)
    argv = [path]
    if by_key:  # lines of a key keep the mapper's order (--stable)
        separator = fmt.separator.decode("latin-1")
        argv += [f"--field-separator={separator}", f"--key=1,{fmt.key_fields}", "--stable"]
    return [
        *argv,
        f"--buffer-size={budget}b",
        f"--temporary-directory={folder}",
        # One thread: map tasks already run side by side, one per core.
        "--parallel=1",
    ]


def bytes_at_or_above(separator: bytes) -> bytes:
    """Every byte that can follow a key in a line without breaking whole-line order: the
    separator and above (and the newline that ends each line)."""
    return bytes(b for b in range(256) if b >= separator[0] or b == ord("\n"))


class SortedCombine:
    """A map task's output buffer: `sort | combiner`, then a PresortedLineBuffer for the
    combiner's output. Together they keep to the budget: a quarter for sort, the rest for
    the line buffer.

    Sort compares whole lines while no line holds a byte below the separator (text never
    does below TAB). Then whole-line order is key order with each key's lines together,
    and sort does a third less work than when it cuts out keys; a key's lines come
    ordered by value rather than as the mapper wrote them (an order Hadoop does not
    define either). At the first line with such a byte, sorting goes on by key, what was
    sorted so far passed on to the new sort: otherwise a line "k" (all key) and lines
    "k<TAB>v" could have a line "k<0x01>..." between them.
    """

    def __init__(
        self,
        fmt: RecordFormat,
        budget: int,
        combine: Callable[[Iterator[bytes]], Iterator[list[bytes]]],
        spill_dir: str | None = None,
    ) -> None:
        self.fmt = fmt
        self.combine = combine
        self.output = PresortedLineBuffer(fmt, budget - budget // 4, spill_dir=spill_dir)
        self.records = 0
        self.combine_input = 0
        self.combine_output = 0
        self.by_key = False
        self._folder = tempfile.mkdtemp(prefix="amr-sort-", dir=spill_dir)
        self._sort_budget = budget // 4
        self._argv = sort_argv(fmt, self._sort_budget, self._folder, by_key=False)
        self._safe_bytes = bytes_at_or_above(fmt.separator)
        self._sort: subprocess.Popen[bytes] | None = None
        self._watch: memory.CommandWatch | None = None
        # What the sorts said, for a failure's message (closed by close(): a sort may
        # outlive this call).
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115

    @property
    def spills(self) -> int:
        return self.output.spills

    def add_chunk(self, chunk: bytes) -> None:
        """Raw map output: whole lines, each ending with LF."""
        if not chunk:
            return
        self.records += chunk.count(b"\n")
        if not self.by_key and chunk.translate(None, self._safe_bytes):
            self._sort_by_key()
        stdin = self._started().stdin
        assert stdin is not None
        try:
            stdin.write(chunk)
        except BrokenPipeError:
            self._failed()

    def add_lines(self, lines: list[bytes]) -> None:
        if lines:
            self.add_chunk(b"\n".join(lines) + b"\n")

    def partitions(self) -> Iterator[tuple[int, Iterator[bytes]]]:
        if self._sort is not None:
            self._combine_sorted()
        return self.output.partitions()

    def _combine_sorted(self) -> None:
        sort = self._sort
        assert sort is not None and sort.stdin is not None and sort.stdout is not None
        sort.stdin.close()
        self.combine_input = self.records
        for lines in self.combine(_reads(sort.stdout)):
            self.combine_output += len(lines)
            self.output.add_lines(lines)
        assert self._watch is not None
        if self._watch.wait() != 0:
            self._failed()
        self._sort = None

    def _sort_by_key(self) -> None:
        self.by_key = True
        by_key = sort_argv(self.fmt, self._sort_budget, self._folder, by_key=True)
        if self._sort is None:
            self._argv = by_key
            return
        print(
            "map output: a line holds a byte below the separator, so sorting whole lines "
            "no longer keeps each key's lines together: sorting by key from here on",
            file=sys.stderr,
            flush=True,
        )
        # What was sorted so far goes to a file first, so that one sort at a time holds
        # its share of the budget; the sort by key reads it, then the rest from stdin.
        earlier, watch = self._sort, self._watch
        assert earlier.stdin is not None and earlier.stdout is not None and watch is not None
        earlier.stdin.close()
        so_far = os.path.join(self._folder, "sorted-so-far")
        with open(so_far, "wb") as f:
            for chunk in _reads(earlier.stdout):
                f.write(chunk)
        if watch.wait() != 0:
            self._failed()
        self._sort, self._argv = None, [*by_key, so_far, "-"]
        self._started()

    def _started(self) -> subprocess.Popen[bytes]:
        if self._sort is None:
            env = {**os.environ, "LC_ALL": "C"}  # bytes order, whatever the locale
            self._sort = subprocess.Popen(
                self._argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=env,
            )
            self._watch = memory.CommandWatch(self._sort)
            print(
                f"map output: sorted for the combiner by {self._argv[0]}, "
                f"{'by key' if self.by_key else 'whole lines'} (buffer "
                f"{self._sort_budget / 2**20:.1f} MiB, temporary files in {self._folder})",
                file=sys.stderr,
                flush=True,
            )
        return self._sort

    def _failed(self) -> NoReturn:
        assert self._sort is not None
        self._sort.kill()
        code = self._sort.wait()
        self._sort = None
        self._stderr.seek(0)
        said = self._stderr.read()[-STDERR_QUOTED:].decode("utf-8", "replace").strip()
        raise TaskFailedError(
            f"sorting the map output failed: {self._argv} exited with code {code}: "
            f"{said or '(no stderr output)'}. Its temporary files go to {self._folder} "
            "(the worker's TMPDIR): check that it has room for the map output."
        )

    def close(self) -> None:
        if self._sort is not None:
            self._sort.kill()
            self._sort.wait()
            self._sort = None
        self._stderr.close()
        self.output.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _reads(stream: IO[bytes]) -> Iterator[bytes]:
    with contextlib.closing(stream):
        while chunk := stream.read1(PIPE_READ):  # type: ignore[attr-defined]
            yield chunk
