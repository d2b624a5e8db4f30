"""Run a job on this machine without Airflow (``airflow-mapreduce run``).

The same phases as the DAG (plan, map, shuffle, reduce, commit: the one driver,
plan/driver.py) and the same worker command as the local backend and the pods, one
subprocess per task, up to `workers` at once. For trying a job on a laptop and for
watching a run's memory (``/usr/bin/time -v``): no metadata DB, scheduler, retries or
schedules. s3:// URIs use the environment's credentials (AWS_* variables, profile).

Each worker runs in its own session, so stopping a task (SIGTERM to its process group,
SIGKILL after a grace) stops the mapper/reducer commands it started too. The first failure,
a task running longer than `task_timeout_seconds` (Airflow would retry it, `retries`
times; here nothing is retried), or SIGINT/SIGTERM stops the running tasks and starts no
other. Workers' output is relayed line by line as it comes, never held whole. A RunOutput
(cli_progress.py) takes those lines and hears of each phase and task, to show progress.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Protocol

from airflow_mapreduce.errors import TaskFailedError
from airflow_mapreduce.job.models import JobSpec
from airflow_mapreduce.launch import job_dir_env, worker_command
from airflow_mapreduce.plan.commit import OutputManifest
from airflow_mapreduce.plan.driver import Phase, run_phases
from airflow_mapreduce.plan.manifests import read_task_spec
from airflow_mapreduce.plan.planner import RunTarget, plan_summary
from airflow_mapreduce.plan.sampling import SampleWorker
from airflow_mapreduce.plan.tasks import RunPlan, TaskManifest
from airflow_mapreduce.storage import FileSystems

OUTPUT_TAIL = 30  # lines of a failed worker's output quoted in the error
LINE_LIMIT = 64 * 1024  # bytes; the rest of a longer output line is dropped
STOP_GRACE_SECONDS = 5.0  # between SIGTERM and SIGKILL to a task's process group
SUMMARY_PREFIX = "airflow-mapreduce worker: "  # a worker's report line (worker/__main__.py)
FAILED_PREFIX = f"{SUMMARY_PREFIX}FAILED"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunOutput(Protocol):
    """Where `run_locally` sends its lines, and what it tells of the phases (from the main
    thread; `echo` and `log` from the relay threads too, one line at a time)."""

    reads_manifests: bool  # read each finished task's manifest for `task_finished`

    def echo(self, line: str) -> None: ...
    def log(self, line: str) -> None: ...
    def phase_started(self, phase: Phase, tasks: int) -> None: ...
    def task_started(self, phase: Phase) -> None: ...
    def task_finished(
        self, phase: Phase, seconds: float, manifest: TaskManifest | None
    ) -> None: ...
    def phase_finished(self, phase: Phase) -> None: ...


class RunStopped(BaseException):
    """SIGINT or SIGTERM ended `run_locally`; every process it started is gone. Like
    KeyboardInterrupt a BaseException: a request, not an error of the job."""

    def __init__(self, signum: int, stopped: list[str]) -> None:
        self.signum = signum
        tasks = (
            f"{', '.join(stopped)} stopped (worker and commands)"
            if stopped
            else "no task was running"
        )
        super().__init__(f"by {signal.Signals(signum).name}: {tasks}; no further task started")


def run_locally(
    job: JobSpec,
    job_dir: Path,
    target: RunTarget,
    workers: int,
    output: RunOutput,
) -> OutputManifest:
    """Plan, run every map and reduce task as a worker subprocess, commit; the manifest.

    `output.echo` gets the plan summary and each task's summary line, `output.log` every
    other line the workers print, as ``map[3]: <line>``. SIGINT and SIGTERM raise RunStopped
    (called from the main thread: it installs their handlers meanwhile).
    """
    files = FileSystems()
    env = job_dir_env(dict(os.environ), str(job_dir))
    tasks = _TaskRunner(job, env, job_dir, workers, output, files)

    def echo_plan(plan: RunPlan) -> None:
        for line in plan_summary(plan):
            output.echo(line)

    with tasks.stopped_by_signals():
        sampler = SampleWorker(str(job_dir), env=lambda uris: env)  # (total order)
        return run_phases(files, job, target, tasks.run, on_plan=echo_plan, run_sample=sampler)


def output_lines(stream: IO[bytes]) -> Iterator[str]:
    """The lines of a worker's output as they come, each cut at LINE_LIMIT bytes."""
    cutting = False  # inside a line already cut: drop its rest
    while piece := stream.readline(LINE_LIMIT):
        ends = piece.endswith(b"\n")
        if not cutting:
            line = piece.removesuffix(b"\n").decode("utf-8", "replace")
            cutting = not ends and len(piece) == LINE_LIMIT
            yield f"{line} [line cut at {LINE_LIMIT // 1024} KiB]" if cutting else line
        elif ends:
            cutting = False


def finished_manifest(files: FileSystems, spec_uri: str) -> TaskManifest | None:
    """The manifest a finished task wrote, or None if it cannot be read: for progress only,
    which must not fail the run (the shuffle and the commit check every manifest)."""
    try:
        uri = read_task_spec(files, spec_uri).manifest_uri
        return TaskManifest.model_validate_json(files.read_bytes(uri))
    except Exception:  # any storage or validation error: best effort
        return None


@dataclass
class _Task:
    phase: Phase
    label: str  # map[3]
    spec_uri: str
    proc: subprocess.Popen[bytes]
    started: float  # time.monotonic()
    deadline: float | None  # time.monotonic() after which task_timeout_seconds stops it
    seconds: float = 0.0  # wall time, once ended
    manifest: TaskManifest | None = None  # once ended well, if output.reads_manifests
    tail: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=OUTPUT_TAIL)
    )
    reaping: threading.Lock = field(default_factory=threading.Lock)

    def signal_group(self, sig: int) -> None:
        """Signal the worker's process group, unless the worker is reaped (its pid, the
        group's id, may then be reused)."""
        with self.reaping:
            if self.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, sig)


class _TaskRunner:
    """Worker subprocesses of one run. Only the main thread starts and stops them; a
    thread per worker relays its output and reports its end on `events`, where the
    signal handler puts stop requests too (SimpleQueue.put is safe in a signal handler)."""

    def __init__(
        self,
        job: JobSpec,
        env: dict[str, str],
        cwd: Path,
        workers: int,
        output: RunOutput,
        files: FileSystems,
    ) -> None:
        self.job = job
        self.env = env
        self.cwd = cwd
        self.workers = workers
        self.output = output
        self.files = files
        self.output_lock = threading.Lock()  # one line at a time from the relay threads
        self.events: queue.SimpleQueue[_Task | int] = queue.SimpleQueue()  # ended, signum
        self.running: list[_Task] = []
        self.in_phase = False  # tasks may be running: the main loop handles stop signals
        self.signalled: int | None = None

    @contextlib.contextmanager
    def stopped_by_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set in the main thread
            return
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signalled is not None:  # stopping already: the first signal decides
            return
        self.signalled = signum
        if not self.in_phase:  # no worker exists: nothing to stop
            raise RunStopped(signum, [])
        self.events.put(signum)

    def run(self, phase: Phase, spec_uris: list[str]) -> None:
        """Run the phase's tasks, up to `workers` at once; the first failure, timeout or
        stop signal stops the running ones, starts no other and raises."""
        queued = collections.deque(enumerate(spec_uris))
        self.output.phase_started(phase, len(spec_uris))
        self.in_phase = True
        try:
            while queued or self.running:
                while queued and len(self.running) < self.workers:
                    index, uri = queued.popleft()
                    self._start(phase, f"{phase}[{index}]", uri)
                self._handle(self._next_event())
        finally:
            self._stop_running()
            self.in_phase = False
        if self.signalled is not None:  # came as the last task ended
            raise RunStopped(self.signalled, [])
        self.output.phase_finished(phase)

    def _start(self, phase: Phase, label: str, spec_uri: str) -> None:
        proc = subprocess.Popen(
            [*worker_command(sys.executable), spec_uri],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, with the commands it starts
        )
        timeout = self.job.task_timeout_seconds
        now = time.monotonic()
        task = _Task(phase, label, spec_uri, proc, now, now + timeout if timeout else None)
        self.running.append(task)
        self.output.task_started(phase)
        threading.Thread(target=self._relay, args=(task,), name=label, daemon=True).start()

    def _relay(self, task: _Task) -> None:
        """Pass the worker's output on until it closes it; then reap the worker, kill what
        is left of its group and report the end."""
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # the main thread takes them
        assert task.proc.stdout is not None
        try:
            for line in output_lines(task.proc.stdout):
                task.tail.append(line)
                with self.output_lock:
                    if line.startswith(SUMMARY_PREFIX) and not line.startswith(FAILED_PREFIX):
                        self.output.echo(line)
                    else:
                        self.output.log(f"{task.label}: {line}")
        finally:
            task.proc.stdout.close()
            os.waitid(os.P_PID, task.proc.pid, os.WEXITED | os.WNOWAIT)  # ended, not reaped
            task.signal_group(signal.SIGKILL)  # processes it left behind
            with task.reaping:
                task.proc.wait()
            task.seconds = time.monotonic() - task.started
            if task.proc.returncode == 0 and self.output.reads_manifests:
                task.manifest = finished_manifest(self.files, task.spec_uri)  # off the main thread
            self.events.put(task)

    def _next_event(self) -> _Task | int | None:
        """A task that ended, a stop signal, or None once a task's deadline has passed."""
        deadlines = [task.deadline for task in self.running if task.deadline is not None]
        try:
            if not deadlines:
                return self.events.get()
            return self.events.get(timeout=max(0.0, min(deadlines) - time.monotonic()))
        except queue.Empty:
            return None

    def _handle(self, event: _Task | int | None) -> None:
        if isinstance(event, int):
            raise RunStopped(event, [task.label for task in self.running])
        if event is None:
            overdue = min(self.running, key=lambda task: task.deadline or float("inf"))
            self._stop_running()  # its last lines are all in once it is stopped
            raise TaskFailedError(
                f"{overdue.label} ran longer than task_timeout_seconds "
                f"({self.job.task_timeout_seconds} s) and was stopped with the commands it "
                f"started ({overdue.spec_uri}). Raise task_timeout_seconds in the job (or "
                "remove it), or make tasks smaller (input.split_size, reducers). "
                "`airflow-mapreduce run` does not retry; under Airflow the task would be "
                f"retried up to `retries` ({self.job.retries}) times. Its last output lines:\n"
                f"{_quoted(overdue)}"
            )
        self.running.remove(event)
        code = event.proc.returncode
        if code != 0:
            how = (
                f"exited with code {code}"
                if code > 0
                else f"was killed by signal {-code} ({signal.strsignal(-code)})"
            )
            raise TaskFailedError(
                f"worker {how} on {event.label} ({event.spec_uri}); its last output lines:\n"
                f"{_quoted(event)}"
            )
        self.output.task_finished(event.phase, event.seconds, event.manifest)

    def _stop_running(self) -> None:
        """SIGTERM the running tasks' process groups, SIGKILL them after the grace; return
        when their relays have reported (after another grace: give up on a relay whose
        pipe a process outside the group holds open)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for task in self.running:
                task.signal_group(sig)
            deadline = time.monotonic() + STOP_GRACE_SECONDS
            while self.running and (left := deadline - time.monotonic()) > 0:
                with contextlib.suppress(queue.Empty):
                    event = self.events.get(timeout=left)
                    if isinstance(event, _Task):
                        self.running.remove(event)
        self.running.clear()


def _quoted(task: _Task) -> str:
    return "\n".join(f"    {line}" for line in task.tail) or "    (no output)"
