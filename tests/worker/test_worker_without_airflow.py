"""The worker must run where Airflow is not installed (pip install airflow-mapreduce[worker])."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from airflow_mapreduce.job import parse_job_text
from airflow_mapreduce.plan.planner import RunTarget, plan_run
from airflow_mapreduce.storage import FileSystems
from tests.no_airflow import BLOCK_AIRFLOW


def test_worker_runs_map_tasks_with_airflow_unimportable(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("a b a\n")
    job = parse_job_text(
        "dag_id: wc\ninput: {uri: x}\nmapper: {command: [cat]}\nreducer: {command: [cat]}\n"
        "reducers: 1\noutput: x\n"
    )
    target = RunTarget(
        "wc", "r1", (f"file://{tmp_path}/in.txt",), f"file://{tmp_path}/out", None, 1, 1
    )
    _, [spec_uri], _ = plan_run(FileSystems(), job, target)
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_AIRFLOW, spec_uri],
        check=False,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
    )
    assert result.returncode == 0, result.stderr
    assert "map[0]" in result.stderr and "1 records in" in result.stderr
    assert "peak memory" in result.stderr
