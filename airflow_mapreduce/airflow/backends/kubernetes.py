"""``kubernetes``: each task is a KubernetesPodOperator pod running the worker on its spec."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from airflow_mapreduce.airflow.backends.base import MappedTasksBackend, worker_task_arguments
from airflow_mapreduce.airflow.labels import POD_MAP_INDEX_TEMPLATE
from airflow_mapreduce.launch import worker_command

if TYPE_CHECKING:
    from airflow.sdk import XComArg
    from airflow.sdk.types import Operator

    from airflow_mapreduce.job.models import JobSpec, KubernetesSpec

WORKDIR_TMP = "/tmp"  # writable scratch for spills under a read-only root filesystem


class KubernetesBackend(MappedTasksBackend):
    name = "kubernetes"

    def worker_tasks(
        self, job: JobSpec, job_name: str, task_id: str, spec_uris: XComArg, job_dir: str | None
    ) -> Operator:
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

        return KubernetesPodOperator.partial(
            **worker_task_arguments(job, task_id),
            **pod_arguments(job, task_id, job_name),
            map_index_template=POD_MAP_INDEX_TEMPLATE,
        ).expand(arguments=spec_uris.map(worker_arguments))


def worker_arguments(spec_uri: str) -> list[str]:
    """Container args for one task: the spec URI after the worker command."""
    return [spec_uri]


def pod_name(job_name: str, task_id: str) -> str:
    """A DNS-1123 name prefix; KubernetesPodOperator adds a unique suffix."""
    name = re.sub(r"[^a-z0-9-]+", "-", f"mr-{job_name}-{task_id}".lower()).strip("-")
    return name[:50].rstrip("-")


def pod_arguments(job: JobSpec, task_id: str, job_name: str) -> dict[str, Any]:
    """KubernetesPodOperator arguments shared by every pod of one phase ("map"/"reduce")
    of the job named `job_name`."""
    from kubernetes.client import models as k8s

    spec: KubernetesSpec = job.kubernetes
    secrets = ([spec.storage_secret] if spec.storage_secret else []) + spec.env_from_secrets
    env_from = [
        k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=name)) for name in secrets
    ] + [
        k8s.V1EnvFromSource(config_map_ref=k8s.V1ConfigMapEnvSource(name=name))
        for name in spec.env_from_config_maps
    ]
    security = spec.security_context
    return {
        "name": pod_name(job_name, task_id),
        "namespace": spec.namespace,
        "image": spec.image_of(task_id),  # map_image / reduce_image, else image
        "image_pull_policy": spec.image_pull_policy,
        "image_pull_secrets": [k8s.V1LocalObjectReference(name=n) for n in spec.image_pull_secrets]
        or None,
        "cmds": worker_command(),
        "kubernetes_conn_id": spec.kubernetes_conn_id,
        "service_account_name": spec.service_account_name,
        "labels": {
            "app.kubernetes.io/name": "airflow-mapreduce",
            "app.kubernetes.io/component": task_id,
            "airflow-mapreduce/job": pod_name(job_name, ""),
            **spec.labels,
        },
        "annotations": spec.annotations or None,
        "env_vars": [k8s.V1EnvVar(name=k, value=v) for k, v in sorted(spec.env.items())],
        "env_from": env_from or None,
        "container_resources": _resources(spec, task_id),
        "node_selector": spec.node_selector or None,
        "tolerations": [
            k8s.V1Toleration(
                key=t.key,
                operator=t.operator,
                value=t.value,
                effect=t.effect,
                toleration_seconds=t.toleration_seconds,
            )
            for t in spec.tolerations
        ]
        or None,
        "affinity": dict(spec.affinity) or None,  # camelCase, converted by the operator
        "security_context": k8s.V1PodSecurityContext(
            run_as_non_root=security.run_as_non_root or None,
            run_as_user=security.run_as_user,
            run_as_group=security.run_as_group,
            fs_group=security.fs_group,
            seccomp_profile=k8s.V1SeccompProfile(type=security.seccomp_profile),
        ),
        "container_security_context": k8s.V1SecurityContext(
            allow_privilege_escalation=False,
            read_only_root_filesystem=security.read_only_root_filesystem,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
        ),
        "volumes": [k8s.V1Volume(name="scratch", empty_dir=k8s.V1EmptyDirVolumeSource())],
        "volume_mounts": [k8s.V1VolumeMount(name="scratch", mount_path=WORKDIR_TMP)],
        "pod_template_file": spec.pod_template_file,
        "startup_timeout_seconds": spec.startup_timeout_seconds,
        "deferrable": spec.deferrable,
        "startup_check_interval_seconds": spec.startup_check_interval_seconds,
        "poll_interval": spec.poll_interval_seconds,
        "get_logs": True,
        "do_xcom_push": False,  # manifests in storage are the results, not a sidecar's XCom
        "on_finish_action": spec.on_finish_action,
        "on_kill_action": "delete_pod",  # timeout / mark failed / killed run: no pod remains
    }


def _resources(spec: KubernetesSpec, task_id: str) -> Any:
    from kubernetes.client import models as k8s

    phase = spec.map_resources if task_id == "map" else spec.reduce_resources
    if phase is not None:
        return k8s.V1ResourceRequirements(
            requests={k: str(v) for k, v in phase.requests.items()} or None,
            limits={k: str(v) for k, v in phase.limits.items()} or None,
        )
    amounts = {k: str(v) for k, v in (("cpu", spec.cpu), ("memory", spec.memory)) if v}
    if not amounts:
        return None
    return k8s.V1ResourceRequirements(requests=amounts, limits=amounts)
