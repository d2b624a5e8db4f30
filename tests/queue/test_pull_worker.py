"""`python -m airflow_mapreduce.worker --pull QUEUE`, with Airflow unimportable, as in a pod."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from airflow_mapreduce.job import parse_job_text
from airflow_mapreduce.plan.planner import RunTarget, plan_run
from airflow_mapreduce.plan.tasks import TaskManifest
from airflow_mapreduce.queue import QUEUE_URL_ENV, QueuePolicy, open_queue
from airflow_mapreduce.storage import FileSystems
from tests.no_airflow import BLOCK_AIRFLOW


def run_worker(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_AIRFLOW, *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


HOG = 200 << 20
# Task 0's mapper holds HOG bytes of touched pages once, in the worker process itself.
HOG_MAPPER = f"""
from airflow_mapreduce.worker import reporter

def mapper(_key, line):
    if reporter.current_task().task_index == 0 and line.startswith("a b a 0"):
        hog = bytearray({HOG})
        hog[::4096] = b"x" * len(hog[::4096])
        del hog
    for word in line.split():
        yield word, 1
"""


def test_pull_worker_runs_every_queued_map_task_without_airflow(
    queue_server, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "in").mkdir()
    for i in range(3):
        (tmp_path / "in" / f"in-{i}.txt").write_text(f"a b a {i}\n")
    (tmp_path / "hog.py").write_text(HOG_MAPPER)
    job = parse_job_text(
        "dag_id: wc\ninput: {uri: x, split_size: 8}\nmapper: {callable: hog:mapper}\n"
        "reducer: {command: [cat]}\n"
        "reducers: 2\noutput: x\n"
    )
    target = RunTarget("wc", "r1", (f"file://{tmp_path}/in",), f"file://{tmp_path}/out", None, 2, 8)
    _, spec_uris, _ = plan_run(FileSystems(), job, target)
    assert len(spec_uris) == 3
    queue = open_queue(queue_server.url, f"pull-{uuid.uuid4().hex[:8]}")
    try:
        queue.enqueue(spec_uris, QueuePolicy())
        env = {**os.environ, QUEUE_URL_ENV: queue_server.url, "PYTHONPATH": str(tmp_path)}
        result = run_worker(["--pull", queue.name], env)
        assert result.returncode == 0, result.stderr
        assert queue.progress().done == 3 and queue.dead_letters() == []
        manifests = [
            TaskManifest.model_validate_json(
                Path(uri.removeprefix("file://")).with_name("manifest.json").read_bytes()
            )
            for uri in spec_uris
        ]
        assert queue_server.url.split("//")[1] not in result.stderr  # the URL is not logged
    finally:
        queue.purge()
        queue.close()
    # One process ran the three tasks, in queue order; each reports its own peak, not
    # the earlier hog's (nor, for the hog, the smaller peak before it).
    assert result.stderr.count("peak memory") == 3
    taken = [
        line.rsplit("/map/", 1)[1][:5] for line in result.stderr.splitlines() if " took " in line
    ]
    assert taken == ["00000", "00001", "00002"]
    peaks = [m.peak_memory.worker_bytes for m in manifests if m.peak_memory]
    assert len(peaks) == 3 and peaks[0] >= HOG
    assert max(peaks[1:]) <= peaks[0] - HOG // 2


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
