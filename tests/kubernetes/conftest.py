"""Fixtures for the Kubernetes path: an emulated cluster (test-only) and a real one if any."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.kubernetes.emulator import NAMESPACE, REPO_DAGS, EmulatedCluster, emulated_cluster
from tests.kubernetes.job_controller import TestJobController
from tests.kubernetes.kubelet import TestKubelet


@pytest.fixture
def k8s_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[EmulatedCluster, TestKubelet]]:
    """The emulated API on 127.0.0.1 + a kubelet running pods with cwd dags/ (the image
    WORKDIR), wired to Airflow as the `kubernetes_default` connection."""
    with emulated_cluster(REPO_DAGS, namespace=NAMESPACE) as (cluster, kubelet):
        monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", cluster.airflow_connection_json())
        yield cluster, kubelet


@dataclass(frozen=True)
class JobsCluster:
    cluster: EmulatedCluster
    kubelet: TestKubelet
    controller: TestJobController


@pytest.fixture
def k8s_jobs_cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[JobsCluster]:
    """`k8s_cluster` that also serves batch/v1 Jobs, run by the test Job controller."""
    cluster = EmulatedCluster(extra_resources=("batch/v1/jobs",)).start()
    kubelet = TestKubelet(cluster, workdir=REPO_DAGS, namespace=NAMESPACE)
    cluster.api.log_lookup = kubelet.container_log
    controller = TestJobController(cluster, namespace=NAMESPACE)
    kubelet.start()
    controller.start()
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", cluster.airflow_connection_json())
    try:
        yield JobsCluster(cluster, kubelet, controller)
    finally:
        controller.stop()
        kubelet.stop()
        cluster.stop()


@pytest.fixture(scope="session")
def real_cluster() -> Any:
    """A CoreV1Api for the cluster of the current kubeconfig (KUBECONFIG), or skip saying why.

    For `pytest -m kubernetes` after `dev/up.sh` and `source .dev-stack/env.sh`.
    """
    try:
        from kubernetes import client, config

        config.load_kube_config()
        client.VersionApi().get_code(_request_timeout=5)
    except Exception as exc:
        pytest.skip(f"no reachable Kubernetes cluster in the kubeconfig (KUBECONFIG): {exc}")
    return client.CoreV1Api()
