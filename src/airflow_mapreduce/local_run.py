"""Run a job on this machine without Airflow (``airflow-mapreduce run``).

The same phases as the DAG (plan, map, shuffle, reduce, commit) and the same worker
command as the local backend and the pods, one subprocess per task, up to `workers` at
once. For trying a job on a laptop and for watching a run's memory (``/usr/bin/time -v``):
no metadata DB, scheduler, retries or schedules. s3:// URIs use the environment's
credentials (AWS_* variables, profile).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from airflow_mapreduce.errors import MapReduceError, TaskFailedError
from airflow_mapreduce.launch import job_dir_env, worker_command
from airflow_mapreduce.plan.commit import OutputManifest, commit_run
from airflow_mapreduce.plan.planner import RunTarget, plan_run, plan_summary
from airflow_mapreduce.plan.shuffle import shuffle_run
from airflow_mapreduce.spec.models import JobSpec
from airflow_mapreduce.storage import FileSystems

STDERR_TAIL = 30  # lines of a failed worker's stderr quoted in the error


def run_locally(
    job: JobSpec,
    job_dir: Path,
    target: RunTarget,
    workers: int,
    echo: Callable[[str], None],
) -> OutputManifest:
    """Plan, run every map and reduce task as a worker subprocess, commit; the manifest."""
    files = FileSystems()
    plan_uri, map_specs, plan = plan_run(files, job, target)
    for line in plan_summary(plan):
        echo(line)
    env = job_dir_env(dict(os.environ), str(job_dir))
    _run_tasks(map_specs, env, job_dir, workers, echo)
    if not job.map_only:
        reduce_specs = shuffle_run(files, plan_uri, job.max_reduce_tasks)
        _run_tasks(reduce_specs, env, job_dir, workers, echo)
    return commit_run(files, plan_uri)


def _run_tasks(
    spec_uris: list[str],
    env: dict[str, str],
    job_dir: Path,
    workers: int,
    echo: Callable[[str], None],
) -> None:
    def run_one(spec_uri: str) -> None:
        done = subprocess.run(
            [*worker_command(sys.executable), spec_uri],
            env=env,
            cwd=job_dir,
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
        )
        lines = done.stderr.splitlines()
        if done.returncode != 0:
            tail = "\n".join(f"    {line}" for line in lines[-STDERR_TAIL:])
            raise TaskFailedError(
                f"worker exited with code {done.returncode} on {spec_uri}; its last stderr "
                f"lines:\n{tail}"
            )
        echo(lines[-1] if lines else f"{spec_uri}: done")  # the worker's summary line

    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(run_one, uri) for uri in spec_uris]
        failure: MapReduceError | None = None
        for future in futures:
            if future.cancelled():  # queued behind a failure: never started
                continue
            try:
                future.result()
            except MapReduceError as exc:
                if failure is None:  # the first one; no new tasks start after it
                    failure = exc
                    for queued in futures:
                        queued.cancel()
    if failure is not None:
        raise failure
