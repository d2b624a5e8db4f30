"""`python -m airflow_mapreduce.worker --pull QUEUE`, with Airflow unimportable, as in a pod."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from tests.no_airflow import BLOCK_AIRFLOW

from airflow_mapreduce.plan.planner import RunTarget, plan_run
from airflow_mapreduce.queue import QUEUE_URL_ENV, QueuePolicy, open_queue
from airflow_mapreduce.spec import parse_job_text
from airflow_mapreduce.storage import FileSystems


def run_worker(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_AIRFLOW, *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_pull_worker_runs_every_queued_map_task_without_airflow(
    queue_server, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        (tmp_path / f"in-{i}.txt").write_text(f"a b a {i}\n")
    job = parse_job_text(
        "dag_id: wc\ninput: {uri: x, split_size: 8}\nmapper: {command: [cat]}\n"
        "reducer: {command: [cat]}\n"
        "reducers: 2\noutput: x\n"
    )
    target = RunTarget("wc", "r1", f"file://{tmp_path}", f"file://{tmp_path}/out", None, 2, 8)
    _, spec_uris = plan_run(FileSystems(), job, target)
    assert len(spec_uris) == 3
    queue = open_queue(queue_server.url, f"pull-{uuid.uuid4().hex[:8]}")
    try:
        queue.enqueue(spec_uris, QueuePolicy())
        env = {**os.environ, QUEUE_URL_ENV: queue_server.url}
        result = run_worker(["--pull", queue.name], env)
        assert result.returncode == 0, result.stderr
        assert queue.progress().done == 3 and queue.dead_letters() == []
        for uri in spec_uris:
            assert Path(uri.removeprefix("file://")).with_name("manifest.json").exists()
        assert queue_server.url.split("//")[1] not in result.stderr  # the URL is not logged
    finally:
        queue.purge()
        queue.close()


def test_pull_worker_without_a_queue_url_says_where_it_belongs() -> None:
    env = {k: v for k, v in os.environ.items() if k != QUEUE_URL_ENV}
    result = run_worker(["--pull", "some-queue"], env)
    assert result.returncode == 2
    assert f"--pull needs the queue URL in ${QUEUE_URL_ENV}" in result.stderr


def test_pull_worker_started_after_cleanup_exits(queue_server) -> None:  # type: ignore[no-untyped-def]
    """A pod the Job starts late, after the run deleted its queue, must not wait forever."""
    env = {**os.environ, QUEUE_URL_ENV: queue_server.url}
    result = run_worker(["--pull", f"gone-{uuid.uuid4().hex[:8]}"], env)
    assert result.returncode == 0, result.stderr
    assert "queue has no items" in result.stderr
