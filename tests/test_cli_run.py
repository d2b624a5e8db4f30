"""`airflow-mapreduce run` as a user runs it (a subprocess): task_timeout_seconds, SIGINT and
SIGTERM stop every process of the run, and workers' output streams through bounded."""

from __future__ import annotations

import io
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_mapreduce.local_run import LINE_LIMIT, STOP_GRACE_SECONDS, output_lines
from tests.cli_memory import MEASURED_CLI, peak_bytes
from tests.processes import marked_processes, wait_until

CLI = Path(sys.executable).parent / "airflow-mapreduce"
STARTUP = 60.0  # seconds: imports and the plan on a busy machine, before the first task
SLEEPING_MAPPER = """
import sys, time
with open(sys.argv[2], "a") as starts:
    starts.write("started\\n")
print("mapper started", file=sys.stderr, flush=True)
time.sleep(600)
"""


class RunningCli:
    """`airflow-mapreduce run ...` in the background; its stderr read as it comes, each line
    kept cut at 4000 characters (the output test passes 200 MB through it)."""

    def __init__(
        self, folder: Path, args: list[str], command: list[str] | None = None, **env: str
    ) -> None:
        self.proc = subprocess.Popen(
            [*(command or [str(CLI)]), "run", *args],
            cwd=folder,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.stderr_bytes = 0
        self.longest_line = 0
        self.stderr: list[str] = []
        self.lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.stderr_bytes += len(raw)
            self.longest_line = max(self.longest_line, len(raw))
            line = raw.decode(errors="replace").rstrip("\n")[:4000]
            self.stderr.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_line(self, text: str, timeout: float = STARTUP) -> None:
        deadline = time.monotonic() + timeout
        try:
            while (
                line := self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            ) is not None:
                if text in line:
                    return
        except queue.Empty:
            pytest.fail(f"no {text!r} from the CLI in {timeout} s: {self.stderr}")
        pytest.fail(f"the CLI ended without printing {text!r}: {self.stderr}")

    def finish(self, timeout: float = 60.0) -> tuple[int, str]:
        """Its exit code and stdout, once it has ended (and its stderr is read)."""
        assert self.proc.stdout is not None
        code = self.proc.wait(timeout)  # (its stdout, a few lines, fits in the pipe)
        self._reader.join(timeout)
        return code, self.proc.stdout.read().decode()


def write_job(folder: Path, inputs: int, mapper: list[str], **fields: Any) -> Path:
    """A job over `inputs` files of 500 records (a map task each) with this mapper command."""
    (folder / "in").mkdir()
    for index in range(inputs):
        (folder / "in" / f"{index}.txt").write_text(f"word{index}\t1\n" * 500)  # 4000 bytes
    job = {
        "dag_id": "cli_run",
        "input": {"uri": "in", "split_size": "4KiB"},
        "output": "out",
        "reducers": 1,
        "mapper": {"command": mapper},
        "reducer": {"command": ["cat"]},
        **fields,
    }
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def test_a_task_running_longer_than_task_timeout_seconds_fails_the_run_and_is_stopped(
    tmp_path: Path, marker: str
) -> None:
    # The mapper ignores SIGTERM: it goes with SIGKILL to its process group once its
    # worker has ended.
    ignoring = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + SLEEPING_MAPPER
    job = write_job(
        tmp_path,
        1,
        ["python3", "-c", ignoring, marker, str(tmp_path / "starts")],
        task_timeout_seconds=2,
    )
    cli = RunningCli(tmp_path, [str(job), "--run-id", marker])
    cli.wait_for_line("map[0]: mapper started")
    started = time.monotonic()
    code, _ = cli.finish()
    assert code == 1, cli.stderr
    assert time.monotonic() - started < 2 + STOP_GRACE_SECONDS
    message = next(line for line in cli.stderr if line.startswith("FAILED:"))
    assert message.startswith("FAILED: map[0] ran longer than task_timeout_seconds (2 s)")
    stderr = "\n".join(cli.stderr)
    assert "Raise task_timeout_seconds" in stderr and "does not retry" in stderr
    assert "Traceback" not in stderr
    assert wait_until(lambda: not marked_processes(marker)), marked_processes(marker)
    assert not (tmp_path / "out" / "_SUCCESS").exists()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_signal_stops_every_process_and_starts_no_further_task(
    tmp_path: Path, marker: str, sig: signal.Signals, code: int
) -> None:
    starts = tmp_path / "starts"
    job = write_job(tmp_path, 4, ["python3", "-c", SLEEPING_MAPPER, marker, str(starts)])
    cli = RunningCli(tmp_path, [str(job), "--run-id", marker, "--workers", "1"])
    cli.wait_for_line("map[0]: mapper started")
    running = marked_processes(marker)
    assert len(running) >= 3, running  # this CLI, the worker and its mapper
    cli.proc.send_signal(sig)
    exit_code, stdout = cli.finish()
    assert exit_code == code, cli.stderr
    assert "into 4 map task(s)" in stdout
    assert cli.stderr[-1] == (
        f"STOPPED by {sig.name}: map[0] stopped (worker and commands); no further task started"
    )
    assert not any("Traceback" in line for line in cli.stderr), cli.stderr
    assert wait_until(lambda: not marked_processes(marker)), marked_processes(marker)
    assert starts.read_text() == "started\n"  # map[1..3] never started
    assert not [line for line in cli.stderr if line.startswith("map[") and "map[0]" not in line]


def test_200_mb_of_mappers_stderr_stream_through_a_cli_of_bounded_memory(
    tmp_path: Path, marker: str
) -> None:
    # Two mappers at once, 100 MiB of 64 KiB lines each (the CLI once held it all: 1.2 GiB
    # peak), then a longer line the CLI cuts, then their input as output.
    noisy = (
        "import sys\n"
        "chunk = (b'e' * (64 * 1024 - 1) + b'\\n') * 16\n"
        "for _ in range(100):\n"
        "    sys.stderr.buffer.write(chunk)\n"
        "sys.stderr.buffer.write(b'L' * 100_000 + b'\\n')\n"
        "sys.stdout.writelines(sys.stdin)\n"
    )
    job = write_job(tmp_path, 2, ["python3", "-c", noisy, marker])
    vmhwm = tmp_path / "vmhwm"
    cli = RunningCli(
        tmp_path,
        [str(job), "--run-id", marker, "--workers", "2"],
        command=[sys.executable, "-c", MEASURED_CLI],
        CLI_VMHWM_FILE=str(vmhwm),
    )
    code, _ = cli.finish(timeout=300)
    assert code == 0, cli.stderr[-40:]
    assert cli.stderr_bytes > 2 * 100 * 2**20  # every line of both mappers went through
    assert cli.longest_line == len("map[0]: ") + LINE_LIMIT + len(" [line cut at 64 KiB]\n")
    assert (tmp_path / "out" / "_SUCCESS").exists()
    parts = sorted((tmp_path / "out").glob("part-*"))
    records = b"".join(p.read_bytes() for p in parts).splitlines()
    assert sorted(records) == [b"word0\t1"] * 500 + [b"word1\t1"] * 500
    peak_kib = peak_bytes(vmhwm) // 1024
    assert peak_kib < 150 * 1024, f"the CLI's peak RSS was {peak_kib} KiB"


def test_output_lines_cuts_long_lines_and_keeps_a_last_line_without_lf() -> None:
    long = b"x" * (LINE_LIMIT + 10)
    exact = b"y" * (LINE_LIMIT - 1)
    stream = io.BytesIO(b"a\n" + long + b"\n" + exact + b"\nb\n\nlast")
    assert list(output_lines(stream)) == [
        "a",
        "x" * LINE_LIMIT + " [line cut at 64 KiB]",
        exact.decode(),
        "b",
        "",
        "last",
    ]
