"""Progress of ``airflow-mapreduce run``: per phase, tasks done and running, records, ETA.

`PhaseProgress` is the arithmetic, immutable and free of any terminal. A `RunDisplay`
receives the run's lines and task events (local_run.RunOutput) and shows them: `BarDisplay`
as rich progress bars on a terminal, the worker lines printed above them; `PlainDisplay` as
a plain line per phase every few seconds and when the phase completes (CI logs, pipes,
``| tee``); the base `RunDisplay` not at all. Records come from the manifests of finished
tasks; a task whose manifest cannot be read counts as done with no records (best effort:
the shuffle and the commit check every manifest).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import signal
import sys
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Self

import typer

if TYPE_CHECKING:  # the CLI imports this module to parse its options: keep that light
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from airflow_mapreduce.plan.driver import Phase
    from airflow_mapreduce.plan.tasks import TaskManifest

BAR_REFRESH_SECONDS = 0.25  # elapsed and ETA move on between task events
PLAIN_INTERVAL_SECONDS = 5.0  # default of --progress-interval


class ProgressMode(enum.StrEnum):
    """``--progress``: auto picks bar or plain by stderr (see run_display)."""

    AUTO = "auto"
    BAR = "bar"
    PLAIN = "plain"
    NONE = "none"


@dataclasses.dataclass(frozen=True)
class PhaseProgress:
    """Where a phase stands. Each event gives a new value, so a reader on another thread
    never sees half an update."""

    phase: Phase
    total: int  # tasks of the phase
    workers: int  # tasks running at once, at most
    started: float  # time.monotonic() when the phase began
    done: int = 0
    running: int = 0
    records_in: int = 0
    records_out: int = 0
    task_seconds: float = 0.0  # wall time of the finished tasks, summed
    unread: int = 0  # finished tasks whose manifest could not be read: records unknown
    ended: float | None = None  # time.monotonic() when its last task finished

    def task_started(self) -> PhaseProgress:
        return dataclasses.replace(self, running=self.running + 1)

    def task_finished(self, seconds: float, manifest: TaskManifest | None) -> PhaseProgress:
        return dataclasses.replace(
            self,
            done=self.done + 1,
            running=max(0, self.running - 1),
            task_seconds=self.task_seconds + seconds,
            records_in=self.records_in + (manifest.input_records if manifest else 0),
            records_out=self.records_out + (manifest.output_records if manifest else 0),
            unread=self.unread + (manifest is None),
        )

    def finished(self, now: float) -> PhaseProgress:
        return dataclasses.replace(self, ended=now)

    @property
    def mean_task_seconds(self) -> float | None:
        return self.task_seconds / self.done if self.done else None

    @property
    def eta_seconds(self) -> float | None:
        """Seconds until the phase is done, None until a task has finished: the tasks left
        share the workers they can use (fewer than `workers` near the end), each taking the
        mean time of the finished ones. Rough: the running tasks' time spent is ignored."""
        left = self.total - self.done
        if left <= 0:
            return 0.0
        mean = self.mean_task_seconds
        if mean is None:
            return None
        return mean * left / min(self.workers, left)

    def elapsed_seconds(self, now: float) -> float:
        return (self.ended if self.ended is not None else now) - self.started

    def status(self, now: float) -> str:
        """``3/8 done, 2 running, 12,345 records in, 6,789 out, 00:04 elapsed, ETA 00:07``"""
        text = (
            f"{self.done}/{self.total} done, {self.running} running, "
            f"{self.records_in:,} records in, {self.records_out:,} out"
        )
        if self.unread:
            text += f" (+{self.unread} task(s) unread)"
        text += f", {clock(self.elapsed_seconds(now))} elapsed"
        if self.ended is None:
            eta = self.eta_seconds
            text += f", ETA {'?' if eta is None else clock(eta, round_up=True)}"
        return text

    def line(self, now: float) -> str:
        return f"{self.phase}: {self.status(now)}"


def clock(seconds: float, *, round_up: bool = False) -> str:
    """00:07, 12:34, 1:02:03; whole seconds down, or up (an ETA of 0.2 s is not 00:00)."""
    whole = math.ceil(seconds) if round_up else math.floor(seconds)
    minutes, secs = divmod(max(0, whole), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class RunDisplay:
    """A run's lines to stdout (`echo`) and stderr (`log`), and no progress shown
    (``--progress none``). Subclasses show the phases in `_changed` (after each event, in
    the caller's thread) and `_tick` (every `tick_seconds`, in a thread of their own)."""

    reads_manifests = False  # True: local_run reads each finished task's manifest (records)
    tick_seconds: float | None = None

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._phases: dict[Phase, PhaseProgress] = {}
        self._phases_lock = threading.Lock()  # never held while writing
        self._output_lock = threading.Lock()  # a line at a time: relays, ticker, main thread
        self._stop_ticking = threading.Event()
        self._ticker: threading.Thread | None = None

    def echo(self, line: str) -> None:
        with self._output_lock:
            typer.echo(line)

    def log(self, line: str) -> None:
        with self._output_lock:
            typer.echo(line, err=True)

    def phase_started(self, phase: Phase, tasks: int) -> None:
        self._put(PhaseProgress(phase, tasks, self.workers, time.monotonic()))

    def task_started(self, phase: Phase) -> None:
        self._put(self._phases[phase].task_started())

    def task_finished(self, phase: Phase, seconds: float, manifest: TaskManifest | None) -> None:
        self._put(self._phases[phase].task_finished(seconds, manifest))

    def phase_finished(self, phase: Phase) -> None:
        self._put(self._phases[phase].finished(time.monotonic()))

    def phases(self) -> list[PhaseProgress]:
        with self._phases_lock:
            return list(self._phases.values())

    def _put(self, progress: PhaseProgress) -> None:
        """Only the caller's thread (local_run's main thread) changes the phases."""
        with self._phases_lock:
            self._phases[progress.phase] = progress
        self._changed(progress)

    def _changed(self, progress: PhaseProgress) -> None:
        pass

    def _tick(self) -> None:
        pass

    def _close(self) -> None:
        pass

    def __enter__(self) -> Self:
        if self.tick_seconds is not None:
            self._ticker = threading.Thread(target=self._keep_ticking, name="progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop_ticking.set()
        if self._ticker is not None:
            self._ticker.join()
        self._close()

    def _keep_ticking(self) -> None:
        from airflow_mapreduce.local_run import STOP_SIGNALS

        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # the main thread takes them
        assert self.tick_seconds is not None
        while not self._stop_ticking.wait(self.tick_seconds):
            self._tick()


class PlainDisplay(RunDisplay):
    """A line on stderr per running phase every `interval` seconds, one when a phase
    completes and one for a phase cut short (failure, stop signal). Text only: no escapes."""

    reads_manifests = True

    def __init__(self, workers: int, interval: float) -> None:
        super().__init__(workers)
        self.tick_seconds = interval

    def _changed(self, progress: PhaseProgress) -> None:
        if progress.ended is not None:
            self.log(progress.line(progress.ended))

    def _tick(self) -> None:
        self._log_running()

    def _close(self) -> None:
        self._log_running()  # where the run stopped

    def _log_running(self) -> None:
        now = time.monotonic()
        for progress in self.phases():
            if progress.ended is None:
                self.log(progress.line(now))


class BarDisplay(RunDisplay):
    """A rich progress bar per phase on stderr, redrawn `tick_seconds` apart; every line of
    the run is printed above the bars through the same console (stdout's too, when stdout
    is the same terminal). Leaving it, on success, failure or a stop signal, shows the
    cursor again and leaves the bars in their last state."""

    reads_manifests = True
    tick_seconds = BAR_REFRESH_SECONDS

    def __init__(self, workers: int, *, force: bool = False) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        super().__init__(workers)
        self.console: Console = Console(stderr=True, highlight=False, force_terminal=force or None)
        # Our own ticker refreshes it: rich's refresh thread would not block the stop
        # signals, which must reach the main thread (local_run waits on a queue there).
        self.progress: Progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            TextColumn("{task.fields[status]}", markup=False),
            console=self.console,
            auto_refresh=False,
            redirect_stdout=False,  # stdout may be a file: `echo` decides
            redirect_stderr=False,
        )
        self.rows: dict[Phase, TaskID] = {}
        self.stdout_is_terminal = sys.stdout.isatty()

    def echo(self, line: str) -> None:
        if self.stdout_is_terminal:
            self.console.out(line)
        else:
            super().echo(line)

    def log(self, line: str) -> None:
        self.console.out(line)

    def _changed(self, progress: PhaseProgress) -> None:
        now = time.monotonic()
        if progress.phase not in self.rows:
            self.rows[progress.phase] = self.progress.add_task(
                progress.phase, total=progress.total, status=progress.status(now)
            )
        self.progress.update(
            self.rows[progress.phase],
            completed=progress.done,
            status=progress.status(now),
            refresh=progress.ended is not None,
        )

    def _tick(self) -> None:
        now = time.monotonic()
        for progress in self.phases():
            row = self.rows.get(progress.phase)  # none yet: its first _changed is under way
            if progress.ended is None and row is not None:
                self.progress.update(row, status=progress.status(now))
        self.progress.refresh()

    def __enter__(self) -> Self:
        self.progress.start()
        return super().__enter__()

    def _close(self) -> None:
        self._tick()  # the last elapsed times
        self.progress.stop()


def run_display(mode: ProgressMode, workers: int, interval: float) -> RunDisplay:
    """The display `mode` asks for; auto: bars when stderr is an interactive terminal
    (a TTY, TERM not dumb, TTY_INTERACTIVE not 0), else plain lines."""
    if mode is ProgressMode.AUTO:
        mode = ProgressMode.BAR if _stderr_is_interactive() else ProgressMode.PLAIN
    if mode is ProgressMode.BAR:
        return BarDisplay(workers, force=True)
    if mode is ProgressMode.PLAIN:
        return PlainDisplay(workers, interval)
    return RunDisplay(workers)


def _stderr_is_interactive() -> bool:
    from rich.console import Console

    # isatty first: rich alone takes FORCE_COLOR (often set in CI) for a terminal
    return sys.stderr.isatty() and Console(stderr=True).is_interactive
