from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from airflow_mapreduce.errors import TaskFailedError
from airflow_mapreduce.plan.tasks import Counters
from airflow_mapreduce.worker.streaming import lines_of, run_command_chunks

PY = sys.executable


def run_command(argv: list[str], chunks: Iterable[bytes], **options: Any) -> Iterator[bytes]:
    """The command's output lines, as the worker cuts them."""
    output = run_command_chunks(argv, chunks, **options)
    return itertools.chain.from_iterable(lines_of(output))


def run(script: str, data: bytes, counters: Counters | None = None) -> list[bytes]:
    return list(
        run_command(
            [PY, "-c", script],
            [data],
            role="mapper",
            what="mapper on test",
            counters={} if counters is None else counters,
        )
    )


def test_lines_pass_through_and_counters_are_collected() -> None:
    counters: Counters = {}
    script = (
        "import sys\n"
        "for line in sys.stdin:\n"
        "    sys.stdout.write(line.upper())\n"
        "    sys.stderr.write('reporter:counter:Words,Lines,1\\n')\n"
        "sys.stderr.write('reporter:counter:Words,Big Batch,40\\n')\n"
        "sys.stderr.write('reporter:status:done\\n')\n"
    )
    assert run(script, b"a\tb\nc\n", counters) == [b"A\tB", b"C"]
    assert counters == {"Words": {"Lines": 2, "Big Batch": 40}}


def test_non_zero_exit_fails_and_quotes_the_last_stderr_lines() -> None:
    script = (
        "import sys\nsys.stdin.read()\n"
        "for i in range(30): print('oops', i, file=sys.stderr)\n"
        "sys.exit(3)"
    )
    with pytest.raises(TaskFailedError) as info:
        run(script, b"x\n")
    message = str(info.value)
    assert "mapper on test" in message and "exited with code 3" in message
    assert "oops 29" in message and "oops 9" not in message  # only the tail


def test_a_command_that_stops_reading_early_cannot_drop_records() -> None:
    script = "import sys\nsys.stdin.readline()\nprint('first')"
    with pytest.raises(TaskFailedError, match="before reading all of its input"):
        run(script, b"line\n" * 200_000)


def test_a_missing_command_says_it_must_exist() -> None:
    with pytest.raises(TaskFailedError, match=r"cannot start .* must exist"):
        list(run_command(["/nonexistent/mapper"], [b""], role="mapper", what="mapper", counters={}))


def test_large_input_and_output_do_not_deadlock() -> None:
    data = b"".join(b"key%d\tvalue\n" % i for i in range(300_000))
    out = run("import sys\nsys.stdout.write(sys.stdin.read())", data)
    assert len(out) == 300_000 and out[-1] == b"key299999\tvalue"


def test_commands_write_their_stdout_in_blocks_unless_the_job_asks_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An inherited PYTHONUNBUFFERED=1 (common in images) would make every print() a
    system call on the pipe; cmdenv may still set it on purpose."""
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    script = (
        "import os, sys\n"
        "print(os.environ.get('PYTHONUNBUFFERED', 'unset'), sys.stdout.write_through)"
    )
    assert run(script, b"") == [b"unset False"]
    asked = run_command(
        [PY, "-c", script],
        [b""],
        role="mapper",
        what="m",
        counters={},
        env={"PYTHONUNBUFFERED": "x"},
    )
    assert list(asked) == [b"x True"]
