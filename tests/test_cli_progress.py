"""Progress of `airflow-mapreduce run`: the arithmetic (cli_progress.PhaseProgress), plain
lines when stderr is a pipe, rich's live bars under a pseudo-terminal, and a terminal left
usable after Ctrl-C."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest
import yaml

from airflow_mapreduce.cli_progress import PhaseProgress, PlainDisplay, clock
from airflow_mapreduce.local_run import finished_manifest
from airflow_mapreduce.plan.tasks import TaskManifest
from airflow_mapreduce.storage import FileSystems
from tests.processes import marked_processes, wait_until
from tests.test_cli_run import CLI, SLEEPING_MAPPER, STARTUP
from tests.wordcount import input_counts, output_counts

WORDCOUNT = Path(__file__).resolve().parents[1] / "dags" / "mapreduce_jobs" / "wordcount"
ESC = b"\x1b"
SHOW_CURSOR, HIDE_CURSOR = b"\x1b[?25h", b"\x1b[?25l"
LINE = re.compile(
    r"(?P<phase>map|reduce): (?P<done>\d+)/(?P<total>\d+) done, (?P<running>\d+) running, "
    r"(?P<records_in>[\d,]+) records in, (?P<records_out>[\d,]+) out, "
    r"(?P<elapsed>\d\d:\d\d) elapsed(?P<eta>, ETA (\d\d:\d\d|\?))?"
)


def manifest(records_in: int, records_out: int) -> TaskManifest:
    return TaskManifest(
        kind="map", dag_id="d", run_id="r", task_index=0, attempt="a", files=[],
        input_records=records_in, output_records=records_out,
    )  # fmt: skip


# The arithmetic -----------------------------------------------------------------------
def test_eta_spreads_the_tasks_left_over_the_workers_at_the_mean_task_time() -> None:
    progress = PhaseProgress("map", total=8, workers=2, started=100.0)
    progress = progress.task_started().task_started().task_started()
    assert progress.eta_seconds is None  # nothing finished: no mean yet
    progress = progress.task_finished(3.0, manifest(10, 4)).task_finished(5.0, manifest(20, 6))
    assert (progress.done, progress.running, progress.mean_task_seconds) == (2, 1, 4.0)
    assert progress.eta_seconds == 4.0 * 6 / 2  # 6 left, 2 workers
    assert progress.line(now=110.5) == (
        "map: 2/8 done, 1 running, 30 records in, 10 out, 00:10 elapsed, ETA 00:12"
    )


def test_eta_near_the_end_counts_only_the_workers_the_tasks_left_can_use() -> None:
    progress = PhaseProgress("reduce", total=5, workers=4, started=0.0)
    for seconds in (2.0, 4.0, 6.0):
        progress = progress.task_started().task_finished(seconds, manifest(1, 1))
    assert progress.eta_seconds == 4.0  # 2 left on 2 of the 4 workers: one mean task time
    for seconds in (2.0, 6.0):
        progress = progress.task_started().task_finished(seconds, manifest(1, 1))
    assert progress.eta_seconds == 0.0
    assert PhaseProgress("reduce", total=0, workers=4, started=0.0).eta_seconds == 0.0


def test_a_finished_phase_keeps_its_elapsed_time_and_shows_no_eta() -> None:
    progress = PhaseProgress("map", total=1, workers=1, started=10.0).task_started()
    progress = progress.task_finished(1.5, manifest(12_345, 6_789)).finished(now=75.0)
    assert progress.line(now=1000.0) == (
        "map: 1/1 done, 0 running, 12,345 records in, 6,789 out, 01:05 elapsed"
    )


def test_a_task_without_a_readable_manifest_counts_as_done_with_records_unknown() -> None:
    progress = PhaseProgress("map", total=3, workers=3, started=0.0)
    progress = progress.task_started().task_finished(2.0, manifest(7, 3))
    progress = progress.task_started().task_finished(4.0, None)
    assert (progress.done, progress.records_in, progress.records_out, progress.unread) == (
        2, 7, 3, 1,
    )  # fmt: skip
    assert progress.eta_seconds == 3.0  # its time still counts
    assert progress.status(now=5.0) == (
        "2/3 done, 0 running, 7 records in, 3 out (+1 task(s) unread), 00:05 elapsed, ETA 00:03"
    )


def test_clock_shows_minutes_and_seconds_and_hours_when_there_are() -> None:
    assert [clock(s) for s in (0, 0.9, 59.9, 61, 3599, 3723)] == [
        "00:00", "00:00", "00:59", "01:01", "59:59", "1:02:03",
    ]  # fmt: skip
    assert clock(0.2, round_up=True) == "00:01"  # an ETA of 0.2 s: not done yet


def test_finished_manifest_is_none_for_a_missing_spec_or_a_truncated_manifest(
    tmp_path: Path,
) -> None:
    files = FileSystems()
    assert finished_manifest(files, (tmp_path / "nothing.json").as_uri()) is None
    spec = {
        "kind": "map", "dag_id": "d", "run_id": "r", "task_index": 0, "splits": [],
        "job": {"mapper": {"command": ["cat"]}, "num_partitions": 1, "codec": "raw"},
        "task_dir": (tmp_path / "task").as_uri(),
        "manifest_uri": (tmp_path / "manifest.json").as_uri(),
    }  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "manifest.json").write_text(manifest(5, 2).model_dump_json()[:40])
    assert finished_manifest(files, (tmp_path / "spec.json").as_uri()) is None
    (tmp_path / "manifest.json").write_text(manifest(5, 2).model_dump_json())
    assert finished_manifest(files, (tmp_path / "spec.json").as_uri()) == manifest(5, 2)


def test_plain_display_prints_a_line_when_a_phase_completes_and_none_in_between(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with PlainDisplay(workers=2, interval=3600) as display:  # no tick within the test
        display.phase_started("map", 2)
        display.task_started("map")
        display.task_finished("map", 1.0, manifest(10, 20))
        assert capsys.readouterr().err == ""
        display.task_started("map")
        display.task_finished("map", 1.0, manifest(5, 1))
        display.phase_finished("map")
    err = capsys.readouterr().err
    assert err.startswith("map: 2/2 done, 0 running, 15 records in, 21 out, 00:00 elapsed\n")
    assert err.count("\n") == 1


# The real CLI ---------------------------------------------------------------------------
def write_wordcount_job(folder: Path, **fields: object) -> tuple[Path, int]:
    """A word count over 5 files of 40 to 200 lines, in map tasks of 4 KiB; the job file
    and the number of input lines (counted here, not by the job)."""
    (folder / "in").mkdir()
    for index in range(5):
        text = [f"w{n % 17} w{(n * index) % 23} line{index}" for n in range(40 * (index + 1))]
        (folder / "in" / f"{index}.txt").write_text("\n".join(text) + "\n")
    job = {
        "dag_id": "cli_progress",
        "input": {"uri": "in", "split_size": "4KiB"},
        "output": "out",
        "reducers": 2,
        "mapper": {"command": ["python3", str(WORDCOUNT / "mapper.py")]},
        "reducer": {"command": ["python3", str(WORDCOUNT / "reducer_current_word.py")]},
        **fields,
    }
    (folder / "job.yaml").write_text(yaml.safe_dump(job))
    input_lines = sum(len(p.read_bytes().splitlines()) for p in (folder / "in").iterdir())
    return folder / "job.yaml", input_lines


def map_tasks(stdout: str) -> int:
    planned = re.search(r"into (\d+) map task\(s\)", stdout)
    assert planned, stdout
    return int(planned.group(1))


def test_piped_stderr_gets_plain_progress_lines_with_the_final_totals(tmp_path: Path) -> None:
    job, input_lines = write_wordcount_job(tmp_path)
    words = sum(input_counts(tmp_path / "in").values())
    done = subprocess.run(
        [str(CLI), "run", str(job), "--workers", "2", "--progress-interval", "0.3"],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        timeout=STARTUP,
        env={**os.environ, "FORCE_COLOR": "1"},  # auto looks at isatty, not at rich's hints
    )
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, stderr
    assert ESC not in done.stdout and ESC not in done.stderr
    tasks = map_tasks(stdout)
    assert tasks > 1 and stdout.count("airflow-mapreduce worker: map[") == tasks
    lines = [LINE.fullmatch(line) for line in stderr.splitlines() if line.startswith("map: ")]
    assert all(lines), stderr
    final = lines[-1]
    assert final is not None and not final["eta"]
    assert (final["done"], final["total"], final["running"]) == (str(tasks), str(tasks), "0")
    assert int(final["records_in"].replace(",", "")) == input_lines
    assert int(final["records_out"].replace(",", "")) == words
    reduce = [LINE.fullmatch(line) for line in stderr.splitlines() if line.startswith("reduce: ")]
    assert reduce and reduce[-1] is not None and reduce[-1]["done"] == reduce[-1]["total"] == "2"
    assert int(reduce[-1]["records_in"].replace(",", "")) == words
    assert output_counts(tmp_path / "out") == input_counts(tmp_path / "in")


class PtyCli:
    """`airflow-mapreduce run ...` on a pseudo-terminal (120x40) as its controlling
    terminal, as from an interactive shell; everything it writes read off the master side."""

    def __init__(self, folder: Path, args: list[str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"}
            and k not in {"COLUMNS", "LINES"}
        }
        # login_tty: a session of its own with the pty as controlling terminal, so that ^C
        # written to the master is the kernel's SIGINT to its foreground process group.
        trampoline = "import os, sys; os.login_tty(0); os.execv(sys.argv[1], sys.argv[1:])"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", trampoline, str(CLI), "run", *args],
            cwd=folder,
            env={**env, "TERM": "xterm-256color"},
            stdin=slave,
            stdout=slave,
            stderr=slave,
        )
        os.close(slave)  # the master reads EIO once the CLI (its last holder) has ended
        self.master = master
        self.output = bytearray()
        self.changed = threading.Condition()
        self.closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: no process holds the slave side any more
                chunk = b""
            with self.changed:
                self.output += chunk
                self.closed = not chunk
                self.changed.notify_all()
            if not chunk:
                return

    def wait_for(self, pattern: bytes, timeout: float = STARTUP) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: pattern in self.output or self.closed, timeout):
                pytest.fail(f"no {pattern!r} on the terminal in {timeout} s: {self.text()}")
            if pattern not in self.output:
                pytest.fail(f"the CLI ended without writing {pattern!r}: {self.text()}")

    def finish(self, timeout: float = STARTUP) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        assert self.closed
        return code

    def __enter__(self) -> PtyCli:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.proc.poll() is None:  # a failed test: no CLI left behind
            self.proc.kill()
            self.proc.wait()
        self._reader.join(STARTUP)
        os.close(self.master)

    def text(self) -> str:
        return self.output.decode(errors="replace")


def test_a_terminal_gets_live_bars_with_the_worker_lines_above_them(tmp_path: Path) -> None:
    job, input_lines = write_wordcount_job(tmp_path)
    with PtyCli(tmp_path, [str(job), "--workers", "2"]) as cli:
        assert cli.finish() == 0, cli.text()
    out = bytes(cli.output)
    assert out.startswith(HIDE_CURSOR) and out.rstrip(b"\r\n").endswith(
        b"counter airflow-mapreduce.spills = 0"
    )
    assert out.rfind(SHOW_CURSOR) > out.rfind(HIDE_CURSOR)
    tasks = map_tasks(cli.text())
    bar = "━".encode()
    final = re.compile(
        rb"map +(\x1b\[[\d;]*m)?("
        + bar
        + rb")+(\x1b\[0m)? "
        + f"{tasks}/{tasks} done, 0 running, {input_lines:,} records in".encode()
    )
    assert final.search(out), cli.text()
    assert re.search(rb"reduce +\S*" + bar + rb".*2/2 done", out), cli.text()
    # Each worker's summary line starts a line of its own: the bars never cut into it.
    assert re.search(rb"\r\x1b\[2K(\x1b\[1A\x1b\[2K)*airflow-mapreduce worker: map\[0\]", out)
    assert output_counts(tmp_path / "out") == input_counts(tmp_path / "in")


def test_ctrl_c_on_the_terminal_stops_the_run_and_leaves_the_cursor_shown(
    tmp_path: Path, marker: str
) -> None:
    starts = tmp_path / "starts"
    # A mapper that hangs: the run stays in its map phase.
    hanging = {"command": ["python3", "-c", SLEEPING_MAPPER, marker, str(starts)]}
    job, _ = write_wordcount_job(tmp_path, mapper=hanging)
    with PtyCli(tmp_path, [str(job), "--workers", "1", "--run-id", marker]) as cli:
        cli.wait_for(b"map[0]: mapper started")
        cli.wait_for(b" 1 running")
        started = time.monotonic()
        os.write(cli.master, b"\x03")  # ^C: the terminal sends SIGINT
        assert cli.finish() == 128 + signal.SIGINT, cli.text()
    assert time.monotonic() - started < 10
    out = bytes(cli.output)
    assert out.rfind(SHOW_CURSOR) > out.rfind(HIDE_CURSOR) >= 0
    assert b"STOPPED by SIGINT: map[0] stopped (worker and commands)" in out
    assert b"Traceback" not in out
    assert wait_until(lambda: not marked_processes(marker)), marked_processes(marker)
    assert starts.read_text() == "started\n"
