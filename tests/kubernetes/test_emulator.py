"""The emulated cluster itself, through the official Kubernetes Python client (no Airflow)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.kubernetes.emulator import NAMESPACE, EmulatedCluster, emulated_cluster
from tests.kubernetes.kubelet import TestKubelet


@pytest.fixture
def cluster() -> Iterator[tuple[EmulatedCluster, TestKubelet, Any]]:
    from kubernetes import client

    with emulated_cluster() as (emulated, kubelet):
        yield emulated, kubelet, client.CoreV1Api(emulated.api_client())


def pod(name: str, script: str, env: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    container = {"name": "base", "image": "ignored:1", "command": ["python3", "-c", script]}
    if env:
        container["env"] = env
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [container]}}  # fmt: skip


def wait_for(condition: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return result


def read_log(api: Any, name: str, **kwargs: Any) -> str:
    # Raw bytes, as KubernetesPodOperator reads them (the client's str decoding is lossy).
    response = api.read_namespaced_pod_log(name, NAMESPACE, _preload_content=False, **kwargs)
    return str(response.data.decode())


def phase(api: Any, name: str) -> str:
    return str(api.read_namespaced_pod(name, NAMESPACE).status.phase)


def test_pod_runs_reports_its_exit_and_serves_its_log(cluster) -> None:  # type: ignore[no-untyped-def]
    _, _, api = cluster
    script = (
        "import sys; print('hello', flush=True); print('to stderr', file=sys.stderr); sys.exit(3)"
    )
    created = api.create_namespaced_pod(NAMESPACE, pod("p1", script))
    assert created.status.phase == "Pending" and created.metadata.uid

    wait_for(lambda: phase(api, "p1") == "Failed")
    [status] = api.read_namespaced_pod("p1", NAMESPACE).status.container_statuses
    assert status.state.terminated.exit_code == 3
    assert status.state.terminated.finished_at is not None
    assert read_log(api, "p1") == "hello\nto stderr\n"  # stdout and stderr, as a runtime does
    stamped = read_log(api, "p1", timestamps=True).splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["hello", "to stderr"]
    assert all(line[:4].isdigit() and line.split(" ", 1)[0].endswith("Z") for line in stamped)


def test_env_comes_from_the_pod_spec_and_secrets_only(cluster, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    emulated, _, api = cluster
    monkeypatch.setenv("HOST_ONLY_SECRET", "must-not-leak")
    emulated.create_secret(NAMESPACE, "creds", {"TOKEN": "from-secret"})
    env = [
        {"name": "PLAIN", "value": "plain"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "TOKEN"}}},
    ]
    script = "import os; e = os.environ; print(e['PLAIN'], e['TOKEN'], 'HOST_ONLY_SECRET' in e)"
    api.create_namespaced_pod(NAMESPACE, pod("p2", script, env))
    wait_for(lambda: phase(api, "p2") == "Succeeded")
    assert read_log(api, "p2") == "plain from-secret False\n"


def test_a_missing_secret_keeps_the_pod_pending_until_it_exists(cluster) -> None:  # type: ignore[no-untyped-def]
    emulated, _, api = cluster
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "later", "key": "TOKEN"}}}]
    api.create_namespaced_pod(NAMESPACE, pod("p6", "import os; print(os.environ['TOKEN'])", env))

    def waiting() -> Any:
        statuses = api.read_namespaced_pod("p6", NAMESPACE).status.container_statuses
        return statuses and statuses[0].state.waiting

    reason = wait_for(waiting)
    assert (reason.reason, reason.message) == (
        "CreateContainerConfigError",
        'secret "later" not found',
    )
    assert phase(api, "p6") == "Pending"
    emulated.create_secret(NAMESPACE, "later", {"OTHER": "x"})  # the key is still missing
    wait_for(lambda: "couldn't find key TOKEN in Secret later" in (waiting().message or ""))
    api.delete_namespaced_secret("later", NAMESPACE)
    emulated.create_secret(NAMESPACE, "later", {"TOKEN": "arrived"})
    wait_for(lambda: phase(api, "p6") == "Succeeded")
    assert read_log(api, "p6") == "arrived\n"


def test_deleting_a_running_pod_kills_its_process(cluster) -> None:  # type: ignore[no-untyped-def]
    _, kubelet, api = cluster
    api.create_namespaced_pod(
        NAMESPACE, pod("p3", "import time; print('up', flush=True); time.sleep(60)")
    )
    wait_for(lambda: phase(api, "p3") == "Running")
    process = kubelet.runs[f"{NAMESPACE}/p3"].process
    api.delete_namespaced_pod("p3", NAMESPACE)
    wait_for(lambda: process.poll() is not None, timeout=10)
    assert process.returncode == -9
    assert api.list_namespaced_pod(NAMESPACE).items == []


def test_watch_streams_pod_events(cluster) -> None:  # type: ignore[no-untyped-def]
    from kubernetes import watch

    _, _, api = cluster
    api.create_namespaced_pod(NAMESPACE, pod("p4", "print('done')"))
    stream = watch.Watch().stream(api.list_namespaced_pod, NAMESPACE, timeout_seconds=10)
    events = []
    for event in stream:  # the client sends watch=True: a stream of events, not one list
        events.append((event["type"], event["object"].metadata.name))
        if event["object"].status.phase == "Succeeded":
            break
    assert events[0] == ("ADDED", "p4") and events[-1] == ("MODIFIED", "p4")


def test_exec_is_refused(cluster) -> None:  # type: ignore[no-untyped-def]
    from kubernetes.client.exceptions import ApiException

    _, _, api = cluster
    api.create_namespaced_pod(NAMESPACE, pod("p5", "print('x')"))
    with pytest.raises(ApiException) as error:
        api.connect_get_namespaced_pod_exec("p5", NAMESPACE, command=["true"])
    assert error.value.status == 400
