"""Peak memory of a task, for sizing workers and pods: the worker's own and its commands'.

Each task's manifest records the worker process's peak resident set (VmHWM: what
`/usr/bin/time -v` and the pod's memory limit see) and the largest peak of the
mapper/combiner/reducer commands it ran; the commit step reports the largest of each per
phase. A worker that runs many tasks (work-queue mode) resets its high-water mark before
each, so that each task reports its own peak.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import resource
import subprocess
import sys
import threading
from collections.abc import Iterator

from airflow_mapreduce.plan.tasks import PeakMemory

# New container objects between two collections of the garbage collector's youngest
# generation (Python's default: 700). A task of Python callables keeps millions alive for
# a while (a tuple per pair, a list per key): at 700, collections walk them over and over,
# a quarter of a per-record mapper's map task. Cycles are still collected, in larger steps.
YOUNG_OBJECTS_PER_COLLECTION = 50_000

_commands_peak = 0


def start_task() -> None:
    """Forget the commands of earlier tasks run by this process."""
    global _commands_peak  # noqa: PLW0603 - one task at a time per worker process
    _commands_peak = 0


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """The garbage collector's youngest generation collected every
    YOUNG_OBJECTS_PER_COLLECTION new objects while a task runs; as before after it."""
    before = gc.get_threshold()
    gc.set_threshold(YOUNG_OBJECTS_PER_COLLECTION, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def reset_process_peak() -> None:
    """Make VmHWM the current RSS, forgetting earlier tasks (Linux >= 4.0; elsewhere the
    peak stays the process's peak so far)."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS


def task_peak() -> PeakMemory:
    return PeakMemory(worker_bytes=own_peak_bytes(), commands_bytes=_commands_peak)


class CommandWatch(threading.Thread):
    """The peak RSS of one running command, read from /proc every INTERVAL seconds.

    A child's own rusage is no help: Linux starts an exec'd child's maxrss at its parent's
    peak. So the command's VmHWM (its own high-water mark) is sampled while it runs, and
    its rusage counts only when it exceeds the worker's peak (which only grows during a
    task, so reading it after the spawn is as good as before): then it is the command's
    own, and exact.
    """

    INTERVAL = 0.05

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        super().__init__(daemon=True, name=f"memory-of-{proc.pid}")
        self.proc = proc
        self.worker_peak = own_peak_bytes()
        self.peak = 0
        self._done = threading.Event()
        self.start()

    def run(self) -> None:  # until the process has exited (no VmHWM line) or wait() stops it
        status_file = f"/proc/{self.proc.pid}/status"
        while (peak := _peak_of(status_file)) is not None:
            self.peak = max(self.peak, peak)
            if self._done.wait(self.INTERVAL):
                break

    def wait(self) -> int:
        """Wait like Popen.wait(), adding this command's peak to the task's."""
        global _commands_peak  # noqa: PLW0603
        proc = self.proc
        if hasattr(os, "waitid"):  # until it exits, unreaped: sampling goes on meanwhile
            with contextlib.suppress(ChildProcessError):
                os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        # Sampling stops before the reap: after it, the pid may belong to another process.
        self._done.set()
        self.join()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except ChildProcessError:  # reaped already (e.g. by Popen.poll): no usage to read
            returncode = proc.wait()
        else:
            returncode = proc.returncode = os.waitstatus_to_exitcode(status)
            if (maxrss := _maxrss_bytes(usage.ru_maxrss)) > self.worker_peak:
                self.peak = max(self.peak, maxrss)
        _commands_peak = max(_commands_peak, self.peak)
        return returncode


def own_peak_bytes() -> int:
    return _peak_of("/proc/self/status") or _maxrss_bytes(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    )


def _peak_of(status_file: str) -> int | None:
    """VmHWM from a /proc status file; None off Linux or once the process has exited."""
    try:
        with open(status_file) as f:
            found = re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.MULTILINE)
    except OSError:
        return None
    return int(found.group(1)) * 1024 if found else None


def _maxrss_bytes(ru_maxrss: int) -> int:
    return ru_maxrss if sys.platform == "darwin" else ru_maxrss * 1024  # macOS: bytes
