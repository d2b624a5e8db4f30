"""The word-count DAG against a real S3 server through an Airflow `aws` connection."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from tests.wordcount import word_counts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def test_word_count_on_s3(airflow_db, s3_server, word_corpus, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Neither Airflow nor the worker may fall back to ambient AWS credentials.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.airflow_conn_json())
    s3 = s3_server.filesystem()
    s3.mkdir("wordcount-bucket")
    s3.put(f"{word_corpus.folder}/", "wordcount-bucket/input/", recursive=True)

    dag = DagBag(str(REPO / "dags")).get_dag("wordcount")
    conf = {"input": "s3://wordcount-bucket/input/", "output": "s3://wordcount-bucket/out/"}
    run = dag.test(run_conf=conf)
    assert run.state == "success"

    s3.invalidate_cache()
    names = sorted(p.rsplit("/", 1)[1] for p in s3.find("wordcount-bucket/out/"))
    assert names == ["_SUCCESS", "_manifest.json", "part-00000", "part-00001", "part-00002"]
    parts = {name: s3.cat(f"wordcount-bucket/out/{name}") for name in names[2:]}
    assert word_counts(parts) == word_corpus.counts
