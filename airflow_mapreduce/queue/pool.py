"""The local twin of the Kubernetes Job: N worker processes on this machine, each running
`python -m airflow_mapreduce.worker --pull NAME` against the same real queue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from airflow_mapreduce.launch import job_dir_env, worker_command
from airflow_mapreduce.queue.base import QUEUE_URL_ENV, QueueError


class LocalWorkerPool:
    def __init__(
        self,
        queue_url: str,
        queue: str,
        workers: int,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        log_dir: str | None = None,
    ) -> None:
        self.queue_url = queue_url
        self.queue = queue
        self.workers = workers
        self.cwd = cwd
        self.env = dict(os.environ if env is None else env)
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> LocalWorkerPool:
        env = job_dir_env({**self.env, QUEUE_URL_ENV: self.queue_url}, self.cwd)
        for index in range(self.workers):
            log = (
                open(Path(self.log_dir) / f"worker-{index}.log", "wb")  # noqa: SIM115
                if self.log_dir
                else subprocess.DEVNULL
            )
            self.processes.append(
                subprocess.Popen(
                    [*worker_command(sys.executable), "--pull", self.queue],
                    cwd=self.cwd,
                    env={**env, "JOB_COMPLETION_INDEX": str(index)},
                    # Not the starting process's stdin: under Airflow that is the task's
                    # socket to its supervisor, which workers outliving a deferred task
                    # would hold open.
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: kill -9 takes its children
                )
            )
        return self

    def running(self) -> int:
        return sum(p.poll() is None for p in self.processes)

    def check(self) -> None:
        """Raise if every worker has exited while work is left (called by the wait loop)."""
        if self.processes and self.running() == 0:
            codes = [p.returncode for p in self.processes]
            raise QueueError(
                f"all {len(codes)} local workers exited (codes {codes}) before the queue "
                f"{self.queue} finished; see their logs"
                + (f" in {self.log_dir}" if self.log_dir else "")
            )

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        os.killpg(self.processes[index].pid, sig)

    def wait(self, timeout: float | None = None) -> list[int]:
        return [p.wait(timeout) for p in self.processes]

    def stop(self, grace: float = 10.0) -> None:
        for p in self.processes:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.processes:
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
