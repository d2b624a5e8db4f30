"""The pods KubernetesPodOperator would create, validated against Kubernetes' OpenAPI schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from airflow_mapreduce.airflow import build_dag
from airflow_mapreduce.airflow.pods import render_worker_pods
from airflow_mapreduce.job import load_job_file, parse_job_text

KUBERNETES_VERSIONS = ["1.33.0", "1.37.0"]
REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted([*(REPO / "dags").glob("*.yaml"), *(REPO / "examples").glob("*.yaml")])

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


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_job_renders_valid_pods(path: Path, version: str) -> None:
    # Local-backend examples too: the same job moved to a cluster must give valid pods.
    job = load_job_file(path).model_copy(update={"backend": "kubernetes"})
    pods = render_worker_pods(build_dag(job))
    # (a multi-step job's per step: step_1.map, step_1.reduce, step_2.map, ...)
    assert {task_id.rsplit(".", 1)[-1] for task_id in pods} == {"map", "reduce"}
    for pod in pods.values():
        kubernetes_validate.validate(pod, version, strict=True)


@pytest.fixture(scope="module")
def platform_pods() -> dict[str, dict[str, Any]]:
    job = load_job_file(next(p for p in EXAMPLES if p.stem == "wordcount_kubernetes"))
    return render_worker_pods(build_dag(job))


def test_platform_settings_reach_the_pods(platform_pods: dict[str, dict[str, Any]]) -> None:
    spec = platform_pods["map"]["spec"]
    assert spec["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert spec["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"}
    ]
    preferred = spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred[0]["weight"] == 50
    [container] = spec["containers"]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["envFrom"] == [
        {"secretRef": {"name": "s3-credentials"}},
        {"configMapRef": {"name": "mapreduce-settings"}},
    ]
    assert platform_pods["map"]["metadata"]["annotations"] == {
        "cluster-autoscaler.kubernetes.io/safe-to-evict": "true"
    }


def test_map_and_reduce_pods_are_sized_separately(
    platform_pods: dict[str, dict[str, Any]],
) -> None:
    [map_container] = platform_pods["map"]["spec"]["containers"]
    [reduce_container] = platform_pods["reduce"]["spec"]["containers"]
    assert map_container["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    assert reduce_container["resources"]["requests"]["ephemeral-storage"] == "4Gi"
    assert reduce_container["resources"]["limits"] == {"memory": "2Gi", "ephemeral-storage": "8Gi"}


def test_operator_settings_follow_the_yaml() -> None:
    text = "pool: batch\npriority_weight: 7\n" + JOB
    text += "  deferrable: true\n  on_finish_action: keep_pod\n  startup_timeout_seconds: 42\n"
    dag = build_dag(parse_job_text(text))
    for task_id in ("map", "reduce"):
        task = dag.get_task(task_id)
        assert task.pool == "batch" and task.priority_weight == 7
        kwargs = task.partial_kwargs  # type: ignore[attr-defined]
        assert kwargs["deferrable"] is True
        assert kwargs["on_finish_action"] == "keep_pod"
        assert kwargs["startup_timeout_seconds"] == 42


def test_pod_template_file_is_the_base_and_the_yaml_wins(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: template}\n"
        "spec:\n  priorityClassName: batch-low\n"
        "  containers: [{name: base, image: template-image:0}]\n"
    )
    (tmp_path / "job.yaml").write_text(JOB + "  pod_template_file: pod.yaml\n")
    pods = render_worker_pods(build_dag(load_job_file(tmp_path / "job.yaml")))
    for pod in pods.values():
        assert pod["spec"]["priorityClassName"] == "batch-low"  # from the template
        assert pod["spec"]["containers"][0]["image"] == "registry.example/wordcount:1.2"
        kubernetes_validate.validate(pod, KUBERNETES_VERSIONS[-1], strict=True)


PER_PHASE = JOB + "  map_image: registry.example/wordcount-map:1.2\n"


def test_map_and_reduce_pods_run_their_own_images() -> None:
    text = PER_PHASE + "  reduce_image: registry.example/wordcount-reduce@sha256:" + "a" * 64 + "\n"
    pods = render_worker_pods(build_dag(parse_job_text(text)))
    images = {phase: pod["spec"]["containers"][0]["image"] for phase, pod in pods.items()}
    assert images == {
        "map": "registry.example/wordcount-map:1.2",
        "reduce": "registry.example/wordcount-reduce@sha256:" + "a" * 64,
    }
    for pod in pods.values():
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(pod, version, strict=True)


def test_a_phase_without_its_own_image_runs_the_job_image() -> None:
    pods = render_worker_pods(build_dag(parse_job_text(PER_PHASE)))
    assert pods["map"]["spec"]["containers"][0]["image"] == "registry.example/wordcount-map:1.2"
    assert pods["reduce"]["spec"]["containers"][0]["image"] == "registry.example/wordcount:1.2"


def test_the_work_queue_job_runs_the_map_image() -> None:
    from types import SimpleNamespace

    from kubernetes.client import ApiClient

    text = PER_PHASE.replace("backend: kubernetes\n", "backend: kubernetes_job\n")
    text += "  reduce_image: registry.example/wordcount-reduce:1.2\n"
    text += "queue: {conn_id: mapreduce_queue, secret: mapreduce-queue, workers: 4}\n"
    dag = build_dag(parse_job_text(text))
    operator: Any = dag.get_task("run_map_queue")
    operator.arguments = ["--pull", "queue"]  # as execute() sets it
    operator.__dict__["hook"] = SimpleNamespace(is_in_cluster=False)  # no cluster here
    ti = SimpleNamespace(dag_id=dag.dag_id, task_id="run_map_queue", run_id="manual__1",
                         map_index=-1, try_number=1)  # fmt: skip
    job = ApiClient().sanitize_for_serialization(
        operator.build_job_request_obj({"ti": ti, "run_id": "manual__1", "dag": dag})
    )
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example/wordcount-map:1.2"
    kubernetes_validate.validate(job, KUBERNETES_VERSIONS[-1], strict=True)
    [reduce_pod] = render_worker_pods(dag).values()  # the reduces stay mapped pods
    assert reduce_pod["spec"]["containers"][0]["image"] == "registry.example/wordcount-reduce:1.2"
