"""Data-aware scheduling on a real `airflow standalone`: the scheduler starts a job scheduled
on an asset once another job commits that output (the example pair wordcount ->
wordcount_frequencies, over S3), and the commit's extra link over REST."""

from __future__ import annotations

import collections
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.airflow.standalone import Airflow
from tests.conftest import S3Server
from tests.wordcount import output_counts, word_counts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

UPSTREAM = "wordcount"
DOWNSTREAM = "wordcount_frequencies"  # dags/wordcount_frequencies.yaml: its asset and output
ASSET = "s3://mapreduce-examples/wordcount/latest/"
DOWNSTREAM_OUTPUT = Path("/tmp/airflow-mapreduce/output/wordcount_frequencies")


def asset_triggered_run(airflow: Airflow, dag_id: str) -> dict[str, Any] | None:
    runs = airflow.client.get(
        f"/api/v2/dags/{dag_id}/dagRuns", params={"run_type": "asset_triggered"}
    )
    runs.raise_for_status()
    return next(iter(runs.json()["dag_runs"]), None)


def test_a_job_scheduled_on_an_asset_runs_after_the_upstream_commits_it(
    airflow: Airflow, s3_server: S3Server, tmp_path: Path
) -> None:
    s3 = s3_server.filesystem()
    if not s3.exists("mapreduce-examples"):
        s3.mkdir("mapreduce-examples")
    corpus = tmp_path / "in"
    corpus.mkdir()
    (corpus / "a.txt").write_text("one fish two fish\nred fish blue fish\nthe cat\n")
    airflow.unpause(UPSTREAM)
    airflow.unpause(DOWNSTREAM)
    downstream_run = None
    try:
        conf = {"input": f"file://{corpus}", "output": ASSET, "parallelism": 1, "reducers": 1}
        triggered = airflow.trigger(UPSTREAM, conf)
        assert triggered.status_code == 200, triggered.text
        run_id = triggered.json()["dag_run_id"]
        assert airflow.wait_for_run(UPSTREAM, run_id, timeout=120) == "success"
        parts = {p.rsplit("/", 1)[1]: s3.cat(p) for p in s3.glob(f"{ASSET}part-*")}
        counts = word_counts(parts)

        # The extra link opens the manifest the commit returned, in the S3 console.
        links = airflow.client.get(
            f"/api/v2/dags/{UPSTREAM}/dagRuns/{run_id}/taskInstances/commit/links"
        )
        links.raise_for_status()
        assert links.json()["extra_links"] == {
            "Output manifest": "https://s3.console.aws.amazon.com/s3/object/mapreduce-examples"
            "?prefix=wordcount/latest/_manifest.json"
        }

        # The scheduler starts the downstream job, which reads what the upstream wrote.
        downstream_run = airflow.wait(
            f"an asset-triggered run of {DOWNSTREAM}",
            lambda: asset_triggered_run(airflow, DOWNSTREAM),
            60,
        )
        downstream_id = downstream_run["dag_run_id"]
        assert airflow.wait_for_run(DOWNSTREAM, downstream_id, timeout=120) == "success"
        # What started it: the upstream commit's asset event for the output it wrote (asked
        # once the run has started: Airflow 3.3.2 answers 500 for an event whose created
        # run has no start_date yet).
        upstream_events = airflow.client.get(
            f"/api/v2/dags/{DOWNSTREAM}/dagRuns/{downstream_id}/upstreamAssetEvents"
        )
        upstream_events.raise_for_status()
        [event] = upstream_events.json()["asset_events"]
        assert (event["source_dag_id"], event["source_run_id"]) == (UPSTREAM, run_id)
        assert (event["uri"], event["source_task_id"]) == (ASSET.rstrip("/"), "commit")
        assert event["extra"]["manifest"] == f"{ASSET}_manifest.json"
        assert event["extra"]["records"] == len(counts)
        # count<TAB>how many words occur that often: fish 4 times, one, two, ... once.
        frequencies = output_counts(DOWNSTREAM_OUTPUT / downstream_id)
        assert frequencies == collections.Counter(
            {str(n): words for n, words in collections.Counter(counts.values()).items()}
        )
        assert frequencies == collections.Counter({"4": 1, "1": 6})
    finally:
        # Paused again: later tests' runs must not start it.
        airflow.client.patch(f"/api/v2/dags/{DOWNSTREAM}", json={"is_paused": True})
        if downstream_run is not None:
            shutil.rmtree(DOWNSTREAM_OUTPUT / downstream_run["dag_run_id"], ignore_errors=True)
