"""Execution backends: how the mapped map and reduce tasks run.

``local``: LocalWorkerOperator subprocesses. ``kubernetes``: KubernetesPodOperator pods.
Both expand over the task-spec URIs a previous step returned, and both run the same
worker command on the same specs.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from airflow.sdk import XComArg

from airflow_mapreduce.airflow.operators import LocalWorkerOperator, worker_command
from airflow_mapreduce.spec.models import JobSpec, KubernetesSpec

WORKDIR_TMP = "/tmp"  # writable scratch for spills under a read-only root filesystem


def expand_worker_tasks(job: JobSpec, task_id: str, spec_uris: XComArg, job_dir: str | None) -> Any:
    """One mapped task per task spec URI, on the job's backend."""
    common: dict[str, Any] = {
        "task_id": task_id,
        "retries": job.retries,
        "retry_delay": timedelta(seconds=job.retry_delay_seconds),
        "retry_exponential_backoff": True,
    }
    if job.max_parallel_tasks is not None:
        common["max_active_tis_per_dagrun"] = job.max_parallel_tasks
    if job.backend == "kubernetes":
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

        return KubernetesPodOperator.partial(**common, **pod_arguments(job, task_id)).expand(
            arguments=spec_uris.map(worker_arguments)
        )
    return LocalWorkerOperator.partial(
        **common, aws_conn_id=job.storage.aws_conn_id, job_dir=job_dir
    ).expand(task_spec_uri=spec_uris)


def worker_arguments(spec_uri: str) -> list[str]:
    """Container args for one task: the spec URI after the worker command."""
    return [spec_uri]


def pod_name(dag_id: str, task_id: str) -> str:
    """A DNS-1123 name prefix; KubernetesPodOperator adds a unique suffix."""
    name = re.sub(r"[^a-z0-9-]+", "-", f"mr-{dag_id}-{task_id}".lower()).strip("-")
    return name[:50].rstrip("-")


def pod_arguments(job: JobSpec, task_id: str) -> dict[str, Any]:
    """KubernetesPodOperator arguments shared by every pod of one phase."""
    from kubernetes.client import models as k8s

    spec: KubernetesSpec = job.kubernetes
    env_from = (
        [k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=spec.storage_secret))]
        if spec.storage_secret
        else None
    )
    return {
        "name": pod_name(job.dag_id, task_id),
        "namespace": spec.namespace,
        "image": spec.image,
        "image_pull_policy": spec.image_pull_policy,
        "cmds": worker_command(),
        "kubernetes_conn_id": spec.kubernetes_conn_id,
        "service_account_name": spec.service_account_name,
        "labels": {
            "app.kubernetes.io/name": "airflow-mapreduce",
            "app.kubernetes.io/component": task_id,
            "airflow-mapreduce/job": pod_name(job.dag_id, "")[:63].rstrip("-"),
            **spec.labels,
        },
        "annotations": spec.annotations or None,
        "env_vars": [k8s.V1EnvVar(name=k, value=v) for k, v in sorted(spec.env.items())],
        "env_from": env_from,
        "container_resources": _resources(spec),
        "security_context": k8s.V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=1000,
            run_as_group=1000,
            fs_group=1000,
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        "container_security_context": k8s.V1SecurityContext(
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
        ),
        "volumes": [k8s.V1Volume(name="scratch", empty_dir=k8s.V1EmptyDirVolumeSource())],
        "volume_mounts": [k8s.V1VolumeMount(name="scratch", mount_path=WORKDIR_TMP)],
        "startup_timeout_seconds": spec.startup_timeout_seconds,
        "get_logs": True,
        "do_xcom_push": False,  # manifests in storage are the results, not a sidecar's XCom
        "on_finish_action": "delete_pod",
        "on_kill_action": "delete_pod",  # timeout / mark failed / killed run: no pod remains
    }


def _resources(spec: KubernetesSpec) -> Any:
    from kubernetes.client import models as k8s

    amounts = {k: v for k, v in (("cpu", spec.cpu), ("memory", spec.memory)) if v}
    if not amounts:
        return None
    return k8s.V1ResourceRequirements(requests=amounts, limits=amounts)
