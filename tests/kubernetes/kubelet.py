"""TEST-ONLY kubelet: runs the pods of an emulated cluster as local processes.

It talks to the API emulator over HTTP with the official Kubernetes Python client, like a
node agent: it watches pods, runs each pod's first container `command` + `args` with the
container's `env` (values, and Secret references resolved from the API) as a local
process, with `workdir` as the working directory (what an image's WORKDIR gives a pod) and
the image ignored. It reports phases and container states (running, then terminated with
exit code and finishedAt = now) through the pods' status subresource and keeps the
process output (stdout and stderr, as a container runtime does) for the log endpoint.
A pod deleted while running has its process killed, as on a real node. A pod whose
Secret (or Secret key) is missing stays Pending with CreateContainerConfigError, retried
until the Secret exists, as on a real node.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.kubernetes.emulator import ContainerLog, EmulatedCluster, now_rfc3339
from tests.kubernetes.polling import PollingController

# Only these host variables reach a container (an image has its own PATH, HOME, locale);
# everything else, credentials above all, must come from the pod spec.
HOST_ENV = ("PATH", "LANG", "LC_ALL", "TMPDIR")


class ContainerConfigError(Exception):
    """What makes a real kubelet report CreateContainerConfigError (a Secret or key missing)."""


class _KeyedSecret(dict[str, str]):
    """A Secret's data; a missing key is a ContainerConfigError, as on a real node."""

    def __init__(self, name: str, data: dict[str, str]) -> None:
        super().__init__(data)
        self.name = name

    def __missing__(self, key: str) -> str:
        raise ContainerConfigError(f"couldn't find key {key} in Secret {self.name}")


@dataclass
class PodRun:
    namespace: str
    name: str
    log: ContainerLog
    process: subprocess.Popen[bytes] | None = None
    exit_code: int | None = None


class TestKubelet(PollingController):
    """Runs every pod of one namespace of an EmulatedCluster."""

    __test__ = False  # not a test class, despite the name

    def __init__(
        self, cluster: EmulatedCluster, *, workdir: Path, namespace: str = "default"
    ) -> None:
        from kubernetes import client

        super().__init__("test-kubelet")
        self.api = client.CoreV1Api(cluster.api_client())
        self.workdir = workdir
        self.namespace = namespace
        self.runs: dict[str, PodRun] = {}
        self._lock = threading.Lock()

    def stop(self) -> None:
        super().stop()
        with self._lock:
            runs = list(self.runs.values())
        for run in runs:
            self._kill(run)

    def container_log(self, namespace: str, name: str) -> ContainerLog | None:
        with self._lock:
            run = self.runs.get(f"{namespace}/{name}")
        return run.log if run and run.process else None

    def sync(self) -> None:
        """Start the containers of new pods, kill those of deleted ones."""
        pods = self.api.list_namespaced_pod(self.namespace).items
        present = set()
        for pod in pods:
            key = f"{pod.metadata.namespace}/{pod.metadata.name}"
            present.add(key)
            with self._lock:
                new = key not in self.runs
                if new:
                    self.runs[key] = PodRun(
                        pod.metadata.namespace, pod.metadata.name, ContainerLog()
                    )
            if new:
                threading.Thread(target=self._run_pod, args=(pod,), daemon=True).start()
        with self._lock:
            gone = [run for key, run in self.runs.items() if key not in present]
        for run in gone:
            self._kill(run)  # deleted pod: stop its container

    def _run_pod(self, pod: Any) -> None:
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        run = self.runs[key]
        container = pod.spec.containers[0]
        started = now_rfc3339()
        scheduled = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": started}]
        try:
            env = self._container_env(pod.metadata.namespace, container)
        except ContainerConfigError as exc:
            # As a real kubelet: the pod stays Pending, its container waiting, and the
            # start is retried (here once a second) until the Secret is there.
            waiting = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
            status = [self._container_status(container, waiting)]
            self._patch(
                pod, {"phase": "Pending", "conditions": scheduled, "containerStatuses": status}
            )
            if not self._stop.wait(1.0):
                with self._lock:
                    self.runs.pop(key, None)  # seen as new on the next poll: tried again
            return
        try:
            process = subprocess.Popen(
                [*(container.command or []), *(container.args or [])],
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except Exception as exc:  # a bad command: the container cannot start
            self._patch(pod, {"phase": "Failed", "message": str(exc), "conditions": scheduled})
            return
        run.process = process
        self._patch(
            pod,
            {
                "phase": "Running",
                "startTime": started,
                "conditions": scheduled,
                "containerStatuses": [
                    self._container_status(container, {"running": {"startedAt": started}})
                ],
            },
        )
        assert process.stdout is not None
        for line in process.stdout:
            run.log.append(line)
        run.exit_code = process.wait()
        run.log.finished = True
        terminated = {
            "exitCode": run.exit_code,
            "reason": "Completed" if run.exit_code == 0 else "Error",
            "startedAt": started,
            "finishedAt": now_rfc3339(),
        }
        self._patch(
            pod,
            {
                "phase": "Succeeded" if run.exit_code == 0 else "Failed",
                "containerStatuses": [
                    self._container_status(container, {"terminated": terminated})
                ],
            },
        )

    @staticmethod
    def _container_status(container: Any, state: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": container.name,
            "image": container.image,
            "imageID": "",
            "ready": "running" in state,
            "restartCount": 0,
            "started": "running" in state,
            "state": state,
        }

    def _patch(self, pod: Any, status: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # the pod may be deleted meanwhile
            self.api.patch_namespaced_pod_status(
                pod.metadata.name, pod.metadata.namespace, {"status": status}
            )

    def _container_env(self, namespace: str, container: Any) -> dict[str, str]:
        env = {k: os.environ[k] for k in HOST_ENV if k in os.environ}
        env["HOME"] = "/tmp"
        for source in container.env_from or []:
            if source.secret_ref is not None:
                env.update(self._secret(namespace, source.secret_ref.name))
        for var in container.env or []:
            if var.value_from is not None and var.value_from.secret_key_ref is not None:
                ref = var.value_from.secret_key_ref
                env[var.name] = self._secret(namespace, ref.name)[ref.key]
            elif var.value is not None:
                env[var.name] = var.value
        return env

    def _secret(self, namespace: str, name: str) -> dict[str, str]:
        from kubernetes.client.exceptions import ApiException

        try:
            secret = self.api.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise ContainerConfigError(f'secret "{name}" not found') from None
            raise
        data = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
        return _KeyedSecret(name, data)

    @staticmethod
    def _kill(run: PodRun) -> None:
        if run.process is not None and run.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.process.pid, signal.SIGKILL)

    def exit_codes(self) -> dict[str, int | None]:
        with self._lock:
            return {key: run.exit_code for key, run in self.runs.items()}
