"""Shipped files through real Airflow (`dag.test()`, local backend): the job's YAML in the
dags folder with its code and tables beside it, on local files and on a real S3 server
(SeaweedFS, credentials from the Airflow connection); and MapReduceOperator's `files=`."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from airflow_mapreduce.errors import JobSpecError
from tests.dags_folder import yaml_dag
from tests.shipped_jobs import KINDS, job_yaml, reference, write_shipped_jobs
from tests.wordcount import output_counts, word_counts

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("kind", list(KINDS))
def test_dag_test_on_local_files(airflow_db, test_dags: Path, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    jobs = write_shipped_jobs(test_dags)
    output = tmp_path / "out"
    dag = yaml_dag(
        test_dags, f"shipped_{kind}", job_yaml(f"shipped_{kind}", kind, "in", str(output))
    )

    run = dag.test()

    assert run.state == "success"
    assert output_counts(output) == reference(jobs, kind)
    assert not (output / "_temporary").exists()  # the staged files went with the work area


@pytest.mark.parametrize("kind", ["streaming", "callable"])
def test_dag_test_on_s3(  # type: ignore[no-untyped-def]
    airflow_db, test_dags: Path, s3_server, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.airflow_conn_json())
    s3 = s3_server.filesystem()
    bucket = f"shipped-dag-{uuid.uuid4().hex[:8]}"
    s3.mkdir(bucket)
    jobs = write_shipped_jobs(test_dags)
    s3.put(f"{jobs.input}/", f"{bucket}/in/", recursive=True)
    more: dict[str, Any] = {}
    if kind == "streaming":  # one shipped file from the object store, one from the dags folder
        s3.put(str(jobs.folder / "tables" / "stop.txt"), f"{bucket}/tables/stop.txt")
        more["files"] = [
            {"source": f"s3://{bucket}/tables/stop.txt", "name": "stopwords.txt"},
            "tables/word_categories.tsv",
        ]
    text = job_yaml(
        f"shipped_s3_{kind}", kind, f"s3://{bucket}/in/", f"s3://{bucket}/out/",
        work=f"s3://{bucket}/work/", **more,
    )  # fmt: skip

    run = yaml_dag(test_dags, f"shipped_s3_{kind}", text).test()

    assert run.state == "success"
    s3.invalidate_cache()
    parts = {p.rsplit("/", 1)[1]: s3.cat(p) for p in s3.find(f"{bucket}/out") if "/part-" in p}
    assert word_counts(parts) == reference(jobs, kind)
    manifest = json.loads(s3.cat(f"{bucket}/out/_manifest.json"))
    assert manifest["run_id"] == run.run_id
    assert [p for p in s3.find(f"{bucket}/work") if p != f"{bucket}/work"] == []


def test_operator_takes_files_and_names_a_missing_one(tmp_path: Path) -> None:
    from airflow.sdk import DAG

    from airflow_mapreduce import MapReduceOperator

    (tmp_path / "lookup.tsv").write_text("the\n")
    common: dict[str, Any] = {
        "input": "s3://b/in/", "output": "s3://b/out/", "mapper": ["python3", "m.py"],
        "reducers": 0, "job_dir": tmp_path,
    }  # fmt: skip
    with DAG("shipped_operator", schedule=None):
        group = MapReduceOperator(task_id="wc", files=["lookup.tsv", "s3://b/t.tsv"], **common)
    assert [(f.source, f.target) for f in group.job.files] == [
        (f"file://{tmp_path}/lookup.tsv", "lookup.tsv"),
        ("s3://b/t.tsv", "t.tsv"),
    ]
    with pytest.raises(JobSpecError) as info, DAG("shipped_operator_2", schedule=None):
        MapReduceOperator(task_id="wc", files=[{"source": "stop.txt", "name": "s"}], **common)
    [problem] = info.value.problems
    assert problem.endswith(
        f"MapReduceOperator(task_id='wc'): files.0.source: {tmp_path}/stop.txt does not exist; "
        "put 's' there or fix the path (relative paths are taken from the job file's folder)"
    )
