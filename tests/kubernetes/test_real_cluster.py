"""The dev stack's DAGs (dev/dags) on a real cluster: `pytest -m kubernetes`.

Skipped unless a cluster is reachable through the kubeconfig. Set up with:
    dev/up.sh && source .dev-stack/env.sh && .venv/bin/pytest -m kubernetes tests/kubernetes
The corpus is uploaded to the stack's MinIO, the DAG runs its pods on the cluster, and the
output is compared with a count made by reading the corpus directly.
"""

from __future__ import annotations

import collections
import os
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEV_DAGS = REPO / "dev" / "dags"
BUCKET = "mapreduce"

pytestmark = [pytest.mark.kubernetes, pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("dag_id", ["wordcount_kind", "wordcount_python_kind"])
def test_dev_dag_on_real_cluster(
    real_cluster, airflow_db, word_corpus, monkeypatch, dag_id
) -> None:  # type: ignore[no-untyped-def]
    if "AIRFLOW_CONN_AWS_DEFAULT" not in os.environ:
        pytest.skip("no S3 connection: `source .dev-stack/env.sh` after dev/up.sh")
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from airflow import settings

    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(DEV_DAGS))
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(DEV_DAGS))
    s3 = S3Hook(aws_conn_id="aws_default")
    prefix = f"test/{dag_id}/{uuid.uuid4().hex}"
    for path in sorted(word_corpus.folder.iterdir()):
        s3.load_file(str(path), f"{prefix}/input/{path.name}", BUCKET, replace=True)

    dag = DagBag(str(DEV_DAGS)).get_dag(dag_id)
    conf = {"input": f"s3://{BUCKET}/{prefix}/input/", "output": f"s3://{BUCKET}/{prefix}/out/"}
    run = dag.test(run_conf=conf)

    assert run.state == "success"
    counts: collections.Counter[str] = collections.Counter()
    for key in s3.list_keys(BUCKET, prefix=f"{prefix}/out/part-"):
        for line in s3.read_key(key, BUCKET).splitlines():
            word, count = line.split("\t")
            assert word not in counts, f"{word!r} emitted twice"
            counts[word] = int(count)
    assert counts == word_corpus.counts
    namespace = dag.get_task("map").partial_kwargs["namespace"]
    left = real_cluster.list_namespaced_pod(namespace, label_selector=f"dag_id={dag_id}").items
    assert [p.metadata.name for p in left] == []  # every pod deleted after its task
