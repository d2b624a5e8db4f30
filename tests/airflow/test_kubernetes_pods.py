"""The pods KubernetesPodOperator would create, validated against Kubernetes' OpenAPI schema."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from airflow_mapreduce.airflow import build_dag
from airflow_mapreduce.airflow.pods import render_worker_pods
from airflow_mapreduce.spec import parse_job_text

KUBERNETES_VERSIONS = ["1.33.0", "1.37.0"]

JOB = """\
dag_id: wordcount_k8s
input: {uri: "s3://data/in/{{ ds }}/"}
mapper: {command: [python3, mapreduce_jobs/wordcount/mapper.py]}
reducer: {command: [python3, mapreduce_jobs/wordcount/reducer.py]}
reducers: 4
output: s3://data/out/
backend: kubernetes
max_parallel_tasks: 20
kubernetes:
  image: registry.example/wordcount:1.2
  namespace: mapreduce
  service_account_name: mapreduce-worker
  cpu: 500m
  memory: 1Gi
  env: {LOG_LEVEL: debug, AWS_ENDPOINT_URL_S3: "http://minio.minio:9000"}
  storage_secret: s3-credentials
  labels: {team: data}
"""


@pytest.fixture(scope="module")
def pods() -> dict[str, dict[str, Any]]:
    return render_worker_pods(build_dag(parse_job_text(JOB)), run_id="manual__2024-05-01")


@pytest.mark.parametrize("phase", ["map", "reduce"])
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_pods_validate_strictly(pods: dict[str, dict[str, Any]], phase: str, version: str) -> None:
    kubernetes_validate.validate(pods[phase], version, strict=True)


@pytest.mark.parametrize("phase", ["map", "reduce"])
def test_pod_runs_the_worker_on_its_task_spec(pods: dict[str, dict[str, Any]], phase: str) -> None:
    pod = pods[phase]
    [container] = pod["spec"]["containers"]
    assert pod["metadata"]["namespace"] == "mapreduce"
    assert pod["metadata"]["name"].startswith(f"mr-wordcount-k8s-{phase}")
    assert container["image"] == "registry.example/wordcount:1.2"
    assert container["command"] == ["python", "-m", "airflow_mapreduce.worker"]
    assert container["args"] == [f"<work>/wordcount_k8s/manual__2024-05-01/{phase}/00000/spec.json"]
    assert container["resources"] == {
        "limits": {"cpu": "500m", "memory": "1Gi"},
        "requests": {"cpu": "500m", "memory": "1Gi"},
    }
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {"LOG_LEVEL": "debug", "AWS_ENDPOINT_URL_S3": "http://minio.minio:9000"}
    assert container["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]
    labels = pod["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == phase
    assert labels["team"] == "data"
    assert labels["dag_id"] == "wordcount_k8s" and labels["task_id"] == phase
    assert labels["map_index"] == "0"
    assert pod["spec"]["serviceAccountName"] == "mapreduce-worker"
    assert len(pod["spec"]["containers"]) == 1  # no XCom sidecar


def test_pods_are_locked_down_by_default(pods: dict[str, dict[str, Any]]) -> None:
    spec = pods["map"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    [container] = spec["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert {"mountPath": "/tmp", "name": "scratch"} in container["volumeMounts"]


def test_mapped_pods_respect_max_parallel(pods: dict[str, dict[str, Any]]) -> None:
    dag = build_dag(parse_job_text(JOB))
    assert dag.get_task("map").max_active_tis_per_dagrun == 20
    assert dag.get_task("reduce").max_active_tis_per_dagrun == 20
