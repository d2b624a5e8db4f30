"""Chaos on the real worker and the word-count job, through real queue servers.

Every run is checked against collections.Counter over the input files, computed here,
independently of the code under test.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_mapreduce.errors import ShuffleError
from airflow_mapreduce.job import parse_job_text
from airflow_mapreduce.plan.driver import Phase, run_phases
from airflow_mapreduce.plan.planner import RunTarget
from airflow_mapreduce.queue import Progress, QueuePolicy, WorkQueue, open_queue
from airflow_mapreduce.queue.pool import LocalWorkerPool
from airflow_mapreduce.queue.progress import wait_until_finished
from airflow_mapreduce.storage import FileSystems
from airflow_mapreduce.worker.run import run_task
from tests.wordcount import output_counts

pytestmark = [pytest.mark.slow, pytest.mark.integration]

DAGS = Path(__file__).resolve().parents[2] / "dags"

# A mapper that fails on purpose: the first attempt of a task holding a FLAKY line fails
# (a marker file remembers it), a task holding a POISON line fails every time. It sleeps a
# little per line so that a task (~1000 lines) stays in flight for the chaos points.
CHAOS_MAPPER = """
import hashlib, os, pathlib, time

def mapper(_key, line):
    if "POISON" in line:
        raise ValueError("poison record: " + line.strip())
    if "FLAKY" in line:
        marker = pathlib.Path(os.environ["CHAOS_DIR"]) / hashlib.sha1(line.encode()).hexdigest()
        if not marker.exists():
            marker.touch()
            raise RuntimeError("transient failure, first attempt")
    time.sleep(0.0002)
    for word in line.split():
        yield word, 1
"""

JOB = """\
dag_id: chaos
input: {uri: unused, split_size: 32KiB}
mapper: {callable: chaos_mapper:mapper}
reducer: {callable: mapreduce_jobs.wordcount_callables:reducer}
reducers: 3
output: unused
"""

POLICY = QueuePolicy(
    max_attempts=3, backoff_seconds=0.2, max_backoff_seconds=1, visibility_timeout_seconds=2
)


class QueuedRun:
    """The driver's run, its map tasks enqueued and run by a local pool of real workers,
    its reduce tasks in this process."""

    def __init__(self, tmp: Path, corpus: Path, server_url: str, extra: dict[str, str]) -> None:
        self.tmp = tmp
        self.input = tmp / "input"
        self.input.mkdir()
        for path in sorted(corpus.iterdir())[:1]:  # ~0.5 MB: about 16 map tasks of 32 KiB
            shutil.copy(path, self.input)
        for name, text in extra.items():
            (self.input / name).write_text(text)
        self.expected: collections.Counter[str] = collections.Counter()
        for path in sorted(self.input.iterdir()):
            self.expected.update(path.read_bytes().decode().split())
        (tmp / "code").mkdir()
        (tmp / "code" / "chaos_mapper.py").write_text(CHAOS_MAPPER)
        (tmp / "markers").mkdir()
        self.files = FileSystems()
        self.queue: WorkQueue = open_queue(server_url, f"chaos-{uuid.uuid4().hex[:8]}")
        self.map_specs: list[str] = []
        self.progress: Progress | None = None  # of the map phase, once it has finished
        env = {
            **os.environ,
            "CHAOS_DIR": str(tmp / "markers"),
            "PYTHONPATH": os.pathsep.join([str(tmp / "code"), str(DAGS)]),
        }
        (tmp / "logs").mkdir()
        self.pool = LocalWorkerPool(
            server_url, self.queue.name, 2, cwd=str(DAGS), env=env, log_dir=str(tmp / "logs")
        )

    def run(self, during: Callable[[Progress], bool] | None = None) -> collections.Counter[str]:
        """Run the job; the output's word counts. While the maps run, `during(progress)` is
        polled until it returns True (chaos done)."""
        target = RunTarget(
            "chaos", "run-1", (f"file://{self.input}",), f"file://{self.tmp}/out", None, 3, 64
        )

        def run_tasks(phase: Phase, spec_uris: list[str]) -> None:
            if phase == "map":
                self.map_specs = spec_uris
                self.queue.enqueue(spec_uris, POLICY)
                self.progress = self._run_maps(during)
            else:
                for uri in spec_uris:
                    run_task(uri, self.files)

        run_phases(self.files, parse_job_text(JOB), target, run_tasks, max_reduce_tasks=3)
        return output_counts(self.tmp / "out")

    def _run_maps(self, during: Callable[[Progress], bool] | None) -> Progress:
        self.pool.start()
        try:
            deadline = time.monotonic() + 180  # generous: a loaded CI machine is slow
            while during is not None and not during(self.queue.progress()):
                assert time.monotonic() < deadline, "chaos point never reached"
                time.sleep(0.05)
            lines: list[str] = []
            started = time.monotonic()
            progress = wait_until_finished(
                self.queue, log=lines.append, interval=1, check=self.pool.check
            )
            assert lines and "done" in lines[-1] and "items/s" in lines[-1]
            print(f"maps took {time.monotonic() - started:.1f} s:", *lines, sep="\n  ")
            self.pool.wait(timeout=30)
            return progress
        finally:
            self.pool.stop()

    def close(self) -> None:
        self.queue.purge()
        self.queue.close()


@pytest.fixture
def queued_run(tmp_path, word_corpus, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(DAGS))  # the reduces run in this process
    runs: list[QueuedRun] = []

    def make(server_url: str, extra: dict[str, str] | None = None) -> QueuedRun:
        runs.append(QueuedRun(tmp_path, word_corpus.folder, server_url, extra or {}))
        return runs[-1]

    yield make
    for run in runs:
        run.close()


def test_kill_9_mid_task_and_transient_failures_lose_and_duplicate_nothing(
    queue_server, queued_run
) -> None:  # type: ignore[no-untyped-def]
    run = queued_run(queue_server.url, {"flaky.txt": "FLAKY alpha beta\nbeta gamma\n"})
    killed: list[int] = []

    def kill_a_busy_worker(progress: Progress) -> bool:
        if progress.done >= 2 and progress.in_flight >= 2:
            run.pool.kill(0, signal.SIGKILL)  # both workers hold a task: one is lost mid-way
            killed.append(progress.done)
            return True
        return False

    counts = run.run(during=kill_a_busy_worker)
    assert killed and run.pool.processes[0].returncode == -signal.SIGKILL
    assert run.progress is not None
    assert (run.progress.done, run.progress.dead) == (len(run.map_specs), 0)
    assert run.queue.dead_letters() == []
    assert counts == run.expected


def test_tasks_failing_forever_are_dead_lettered_with_their_error(queue_server, queued_run) -> None:  # type: ignore[no-untyped-def]
    run = queued_run(queue_server.url, {"poison.txt": "fine words\nPOISON here\n"})
    # Every other map task committed; the shuffle refuses to go on without the dead one.
    with pytest.raises(ShuffleError, match="manifest"):
        run.run()
    progress = run.progress
    assert progress is not None
    assert (progress.done, progress.dead) == (len(run.map_specs) - 1, 1)
    [dead] = run.queue.dead_letters()
    assert dead.attempts == POLICY.max_attempts
    assert dead.error.startswith("RecordError: mapper chaos_mapper:mapper raised ValueError")
    assert "poison record: POISON here" in dead.error and "poison.txt" in dead.error
    poisoned = [u for u in run.map_specs if "poison.txt" in Path(u[7:]).read_text()]
    assert [dead.item] == poisoned


def test_queue_server_restart_mid_run_loses_nothing(queue_server, queued_run) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL (no shutdown save: Redis keeps only its AOF, NATS its JetStream files)."""
    run = queued_run(queue_server.url)

    def restart_server(progress: Progress) -> bool:
        if progress.done >= 3:
            queue_server.stop(signal.SIGKILL)
            time.sleep(1.0)
            queue_server.start()
            return True
        return False

    counts = run.run(during=restart_server)
    assert run.progress is not None
    assert (run.progress.done, run.progress.dead) == (len(run.map_specs), 0)
    assert counts == run.expected
