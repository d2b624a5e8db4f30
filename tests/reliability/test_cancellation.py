"""Cancelling a local task (execution_timeout, "mark failed", a killed run) stops its worker.

Airflow's task runner calls ``on_kill()`` on both paths (task_runner.py: AirflowTaskTimeout
and the SIGTERM handler). Here a real worker runs a mapper that never ends; on_kill must
stop the worker and the mapper and leave no manifest behind.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from airflow_mapreduce.airflow.operators import LocalWorkerOperator
from airflow_mapreduce.errors import TaskFailedError
from airflow_mapreduce.job import parse_job_text
from airflow_mapreduce.plan.layout import RunLayout
from airflow_mapreduce.plan.planner import RunTarget, plan_run
from airflow_mapreduce.storage import FileSystems

from .conftest import DAGS

pytestmark = pytest.mark.integration

ENDLESS_JOB = """\
dag_id: endless
input: {uri: unused}
mapper: {command: [python3, -c, "import time; time.sleep(600)  # endless-mapper"]}
reducers: 0
output: unused
"""


def processes_in_group(pgid: int) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getpgid(int(pid)) == pgid:
                found.append(
                    Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                )
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
    return found


def test_on_kill_stops_worker_and_mapper(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("some words\n")
    job = parse_job_text(ENDLESS_JOB)
    target = RunTarget(
        "endless", "r", (f"file://{tmp_path}/in.txt",), f"file://{tmp_path}/out", None, 0, 1
    )
    _, [spec_uri], _ = plan_run(FileSystems(), job, target)
    operator = LocalWorkerOperator(
        task_id="map", task_spec_uri=spec_uri, aws_conn_id="aws_default", job_dir=str(DAGS)
    )
    failures: list[BaseException] = []

    def execute() -> None:
        try:
            operator.execute({})  # type: ignore[arg-type]
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=execute)
    thread.start()
    deadline = time.monotonic() + 60
    while True:  # wait until the worker has started the mapper
        hook = getattr(operator, "_hook", None)
        process = hook.sub_process if hook is not None else None
        if process is not None and any(
            "endless-mapper" in p for p in processes_in_group(process.pid)
        ):
            break
        assert time.monotonic() < deadline, "the mapper never started"
        time.sleep(0.05)
    pgid = process.pid

    operator.on_kill()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert len(failures) == 1 and isinstance(failures[0], TaskFailedError), failures
    assert "exited with code -15" in str(failures[0])
    deadline = time.monotonic() + 10
    while processes_in_group(pgid):
        assert time.monotonic() < deadline, processes_in_group(pgid)
        time.sleep(0.05)
    layout = RunLayout(f"file://{tmp_path}/out/_temporary", "endless", "r")
    assert not Path(layout.manifest_uri("map", 0).removeprefix("file://")).exists()
    assert not (tmp_path / "out" / "_SUCCESS").exists()
    assert not list((tmp_path / "out").glob("part-*"))


def test_killed_pods_are_deleted() -> None:
    """KubernetesPodOperator.on_kill deletes the pod when its on_kill_action says so."""
    from airflow_mapreduce.airflow.backends.kubernetes import pod_arguments

    job = parse_job_text(ENDLESS_JOB.replace("reducers: 0", "reducers: 0\nbackend: kubernetes"))
    arguments = pod_arguments(job, "map", "endless")
    assert arguments["on_kill_action"] == "delete_pod"
    assert arguments["on_finish_action"] == "delete_pod"
