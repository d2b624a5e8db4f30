"""The S3 word-count DAG in real Airflow (dag.test) behind the recording S3 proxy.

- The connection's ``config_kwargs.retries`` reach the Airflow side and, as
  AWS_RETRY_MODE/AWS_MAX_ATTEMPTS, the local workers (faults themselves: test_s3_faults).
- A second run into the same output replaces it: fewer parts, the stale ones gone,
  _manifest.json names the new run, _SUCCESS present.
- The connection's secret key appears nowhere: not in the task logs, the metadata DB
  (XCom, rendered template fields, run conf...), the console, nor any byte sent to or
  received from S3 (task specs, manifests, plan, data of the work area and output).
"""

from __future__ import annotations

import collections
import json
import os
import sqlite3
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from tests.wordcount import word_counts

from .conftest import DAGS, SmallCorpus
from .s3_fault_proxy import S3FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def counts_of(s3, out: str) -> collections.Counter[str]:  # type: ignore[no-untyped-def]
    paths = [p for p in s3.find(out) if p.rsplit("/", 1)[1].startswith("part-")]
    return word_counts({p.rsplit("/", 1)[1]: s3.cat(p) for p in paths})


def test_s3_dag_reruns_replace_output_and_leak_no_secret(  # type: ignore[no-untyped-def]
    airflow_db, s3_server, small_corpus: SmallCorpus, monkeypatch, capfd
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    s3 = s3_server.filesystem()
    s3.mkdir("secrets-bucket")
    s3.put(f"{small_corpus.folder}/", "secrets-bucket/input/", recursive=True)
    dag = DagBag(str(DAGS)).get_dag("wordcount")
    conf = {"input": "s3://secrets-bucket/input/", "output": "s3://secrets-bucket/out/"}

    with S3FaultProxy(s3_server.endpoint, fault_rate=0.0, seed=11, record=True) as proxy:
        connection = {
            "conn_type": "aws",
            "login": s3_server.access_key,
            "password": s3_server.secret_key,
            "extra": {
                "endpoint_url": proxy.endpoint,
                "region_name": "us-east-1",
                "config_kwargs": {"retries": {"mode": "standard", "max_attempts": 9}},
            },
        }
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
        first = dag.test(run_conf={**conf, "reducers": 4})
        assert first.state == "success"
        s3.invalidate_cache()
        assert len([p for p in s3.find("secrets-bucket/out") if "/part-" in p]) == 4
        second = dag.test(run_conf={**conf, "reducers": 2})
        assert second.state == "success"

    s3.invalidate_cache()
    names = sorted(p.removeprefix("secrets-bucket/out/") for p in s3.find("secrets-bucket/out"))
    assert names == ["_SUCCESS", "_job_history.json", "_manifest.json", "part-00000", "part-00001"]
    manifest = json.loads(s3.cat("secrets-bucket/out/_manifest.json"))
    assert manifest["run_id"] == second.run_id
    assert counts_of(s3, "secrets-bucket/out") == small_corpus.counts

    secret = s3_server.secret_key.encode()
    assert proxy.transcript and any(b'"task_index"' in c for c in proxy.transcript)  # specs
    leaks = [i for i, chunk in enumerate(proxy.transcript) if secret in chunk]
    assert not leaks, f"the secret went over the wire in {len(leaks)} request(s)/response(s)"

    home = Path(os.environ["AIRFLOW_HOME"])
    with sqlite3.connect(home / "airflow.db") as db:
        for table in ("xcom", "rendered_task_instance_fields"):
            rows = db.execute(f"SELECT * FROM {table}").fetchall()
            assert rows, f"{table} is empty: the grep would prove nothing"
            assert secret.decode() not in repr(rows), table
    for path in home.rglob("*"):  # logs, the metadata DB and its journal, config
        if path.is_file():
            assert secret not in path.read_bytes(), path
    console = capfd.readouterr()
    assert "Committed" in console.out + console.err  # the task logs did reach the console
    assert secret.decode() not in console.out + console.err


def test_connection_retry_settings_reach_the_workers() -> None:
    from airflow_mapreduce.airflow.connections import retry_env

    # botocore: `max_attempts` counts retries, `total_max_attempts` and AWS_MAX_ATTEMPTS all tries.
    assert retry_env({"mode": "standard", "max_attempts": 9}) == {
        "AWS_RETRY_MODE": "standard",
        "AWS_MAX_ATTEMPTS": "10",
    }
    assert retry_env({"mode": "adaptive", "total_max_attempts": 5}) == {
        "AWS_RETRY_MODE": "adaptive",
        "AWS_MAX_ATTEMPTS": "5",
    }
    assert retry_env(None) == {}
