"""A streaming command that exits 0 without reading all of its input fails the task,
whatever the input's size (a tiny one fits the pipe buffer: no broken pipe tells), for
the mapper, the combiner and the reducer; commands that read everything pass."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from airflow_mapreduce.cli import app
from airflow_mapreduce.errors import CommandFailedError
from airflow_mapreduce.job import parse_job_text
from airflow_mapreduce.worker import map_task
from airflow_mapreduce.worker.streaming import run_command_chunks

PY = sys.executable
# Prints three records and exits without a look at its input.
NOT_READING = [PY, "-c", "print('a\\t1'); print('b\\t1'); print('c\\t1')"]
IDENTITY = [PY, "-c", "import sys\nfor line in sys.stdin:\n    sys.stdout.write(line)"]
SIZES = {"tiny": 3, "large": 400_000}  # lines: 15 bytes, or 4.6 MB (far beyond a pipe buffer)


def job(mapper: list[str], reducer: list[str], combiner: list[str] | None = None) -> str:
    text = "dag_id: unread\ninput: {uri: unused, split_size: 64MiB}\noutput: unused\nreducers: 1\n"
    steps = {"mapper": mapper, "reducer": reducer, "combiner": combiner}
    for role, argv in steps.items():
        if argv is not None:
            text += f"{role}: {{command: {json.dumps(argv)}}}\n"
    return text


def write_input(folder: Path, lines: int) -> bytes:
    folder.mkdir()
    data = b"".join(b"w%d\t%d\n" % (i % 997, i) for i in range(lines))
    (folder / "data.txt").write_bytes(data)
    return data


@pytest.mark.parametrize("size", sorted(SIZES))
@pytest.mark.parametrize("role", ["mapper", "combiner", "combiner_in_line_buffer", "reducer"])
def test_a_command_that_does_not_read_its_input_fails(  # type: ignore[no-untyped-def]
    run_job, tmp_path, monkeypatch, role, size
) -> None:
    if role == "combiner_in_line_buffer":  # the Python sort buffer's combiner, not sort's
        monkeypatch.setattr(map_task, "groups_by_sort", lambda fmt: False)
    role = role.removesuffix("_in_line_buffer")
    data = write_input(tmp_path / "in", SIZES[size])
    steps = {"mapper": ["cat"], "reducer": ["cat"], "combiner": ["cat"], role: NOT_READING}
    spec = parse_job_text(job(**steps))
    with pytest.raises(CommandFailedError) as failed:
        run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    message = str(failed.value)
    assert failed.value.role == role
    where = {
        "mapper": f"mapper on split file://{tmp_path}/in/data.txt[0:{len(data)}]",
        "combiner": f"combiner on the output of map task 0 (split file://{tmp_path}/in/data.txt",
        "reducer": "reducer on partition 0 (reduce task 0)",
    }
    assert message.startswith(where[role])
    assert f"command {NOT_READING} exited (code 0) before reading all of its input" in message
    assert "unread" in message and "`for line in sys.stdin:`" in message
    if role == "mapper" and size == "tiny":  # exact: nothing of it was read
        assert f"left {len(data)} of the {len(data)} bytes of its input unread" in message
    assert not (tmp_path / "out" / "_SUCCESS").exists()


@pytest.mark.parametrize("size", sorted(SIZES))
def test_a_command_that_reads_part_of_its_input_fails_saying_how_much_it_left(  # type: ignore[no-untyped-def]
    run_job, tmp_path, size
) -> None:
    data = write_input(tmp_path / "in", max(SIZES[size], 30))  # more than 100 bytes
    spec = parse_job_text(job(mapper=["head", "-c", "100"], reducer=["cat"]))
    with pytest.raises(CommandFailedError, match="before reading all of its input") as failed:
        run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    if size == "tiny":
        left = len(data) - 100
        assert f"left {left:,} of the {len(data):,} bytes of its input unread" in str(failed.value)
    else:  # it exited while the input was being fed: the rest is not read to be counted
        assert "left at least" in str(failed.value)


def test_a_python_mapper_that_reads_one_line_of_a_large_input_fails(run_job, tmp_path) -> None:  # type: ignore[no-untyped-def]
    write_input(tmp_path / "in", SIZES["large"])
    first_line = [PY, "-c", "import sys\nsys.stdout.write(sys.stdin.readline())"]
    spec = parse_job_text(job(mapper=first_line, reducer=["cat"]))
    with pytest.raises(CommandFailedError, match="before reading all of its input"):
        run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")


READERS = {
    "cat": ["cat"],
    "sort": ["sort"],
    "awk": ["awk", "{print}"],
    "python": IDENTITY,
    # Reads all of it at once, closes stdin, and only then works and writes.
    "python_closing_stdin": [
        PY,
        "-c",
        "import os, sys, time\ndata = sys.stdin.buffer.read()\nos.close(0)\n"
        "time.sleep(0.2)\nsys.stdout.buffer.write(data)",
    ],
    "wc": ["wc", "-l"],
}


@pytest.mark.parametrize("size", sorted(SIZES))
@pytest.mark.parametrize("reader", sorted(READERS))
def test_commands_that_read_all_their_input_pass_as_every_step(  # type: ignore[no-untyped-def]
    run_job, tmp_path, reader, size
) -> None:
    data = write_input(tmp_path / "in", SIZES[size])
    argv = READERS[reader]
    spec = parse_job_text(job(mapper=argv, combiner=argv, reducer=argv))
    run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    output = (tmp_path / "out" / "part-00000").read_bytes()
    if reader == "wc":
        assert output.strip() == b"1"  # the reducer counted the combiner's one line
    else:
        assert sorted(output.splitlines()) == sorted(data.splitlines())
    assert (tmp_path / "out" / "_SUCCESS").exists()


def test_a_command_that_reads_exactly_its_input_and_exits_before_its_end_passes(  # type: ignore[no-untyped-def]
    run_job, tmp_path
) -> None:
    """`head -c <size>` exits once it has its bytes, maybe before the worker has closed
    the pipe: nothing was left, so nothing was lost."""
    data = write_input(tmp_path / "in", SIZES["large"])
    spec = parse_job_text(job(mapper=["head", "-c", str(len(data))], reducer=["cat"]))
    run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    assert sorted((tmp_path / "out" / "part-00000").read_bytes().splitlines()) == sorted(
        data.splitlines()
    )


def test_a_command_on_an_empty_split_need_not_read(run_job, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Splits that hold no line start (a line longer than the split) give the command no
    input: one that does not read it loses nothing."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "long.txt").write_bytes(b"k\t" + b"v" * 3000 + b"\n")
    text = (
        "dag_id: unread\ninput: {uri: unused, split_size: 1KiB}\noutput: unused\nreducers: 1\n"
        'mapper: {command: [sh, -c, \'if [ "$mapreduce_map_input_start" = 0 ]; then cat; '
        "else echo empty; fi']}\nreducer: {command: [cat]}\n"
    )
    run_job(parse_job_text(text), f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    lines = (tmp_path / "out" / "part-00000").read_bytes().splitlines()
    assert sorted(lines) == [b"empty", b"empty", b"k\t" + b"v" * 3000]


def test_a_command_that_closes_its_input_and_runs_on_fails_once_it_exits() -> None:
    """Writes to its full pipe wait until it exits (the worker holds the read end), then
    what it left is counted: no hang, no broken pipe needed."""
    argv = ["sh", "-c", "exec 0<&-; sleep 0.3; echo done"]
    chunks = [b"x\n" * (1 << 19)] * 8  # 8 MiB
    with pytest.raises(CommandFailedError, match=r"left at least [\d,]+ bytes of its input"):
        list(run_command_chunks(argv, chunks, role="mapper", what="mapper on test", counters={}))


def test_a_consumer_that_stops_early_stops_the_command_without_waiting_for_its_input() -> None:
    fed: list[int] = []

    def chunks():  # type: ignore[no-untyped-def]
        for i in range(10_000):  # 10 GB if it were all fed
            fed.append(i)
            yield b"x\n" * (1 << 19)

    started = time.monotonic()
    output = run_command_chunks(IDENTITY, chunks(), role="reducer", what="r", counters={})
    with contextlib.closing(output):
        next(output)
    assert time.monotonic() - started < 30
    assert len(fed) < 100  # at most a chunk more once the command was stopped


def test_run_without_airflow_fails_on_a_reducer_that_ignores_its_input(tmp_path: Path) -> None:
    """`airflow-mapreduce run`, as a user would: the worker's one-line reason, no commit."""
    data = write_input(tmp_path / "in", SIZES["tiny"])
    job_file = tmp_path / "job.yaml"
    job_file.write_text(job(mapper=["cat"], reducer=NOT_READING).replace("uri: unused", "uri: in"))
    result = CliRunner().invoke(
        app, ["run", str(job_file), "--output", str(tmp_path / "out"), "--workers", "1"]
    )
    assert result.exit_code == 1, result.output
    assert "reducer on partition 0 (reduce task 0): command" in result.stderr
    left = f"before reading all of its input: it left {len(data)} of the {len(data)} bytes"
    assert left in result.stderr
    assert not (tmp_path / "out" / "_SUCCESS").exists()
