"""TEST-ONLY emulated Kubernetes cluster: the kmock API emulator on 127.0.0.1 plus a kubelet.

No Kubernetes API server, kind or Docker runs on the test machines, so the Kubernetes path
is exercised against `kmock` (a Kubernetes API emulator) served over real HTTP, and a small
test kubelet (tests/kubernetes/kubelet.py) that runs each pod's container command as a
local process. Everything a client sees goes through the real Kubernetes REST API.

What this adds on top of kmock (its known gaps, see docs/kubernetes.md):
- `v1/pods`, `v1/events`, `v1/secrets` are declared up front (discovery, empty lists);
- `?watch=True` (what the Python clients send) is treated as `?watch=true`;
- lists and watches honour `labelSelector` (kmock ignores it and returns every object;
  KubernetesPodOperator finds its pod by labels, so a Job's pods would match any task);
- a created pod gets what an API server adds: uid, creationTimestamp and phase Pending;
- a created Job (when "batch/v1/jobs" is served) gets uid, creationTimestamp and an empty
  status; its pods come from the test Job controller (tests/kubernetes/job_controller.py);
- `GET pods/<name>/log` serves the container output the kubelet captured (timestamps,
  sinceSeconds, sinceTime, follow); `exec`/`attach` answer 400: the emulator has no
  exec, so an XCom sidecar cannot work (the provider's design does not use one).

Usage: the `k8s_cluster` fixture in tests/kubernetes/conftest.py; reusable elsewhere via
`EmulatedCluster.start(workdir=...)` / `.stop()`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import threading
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp.web
import kmock
from kmock._internal import rendering

PODS = kmock.resource("v1/pods")
JOBS = kmock.resource("batch/v1/jobs")
REPO_DAGS = Path(__file__).resolve().parents[2] / "dags"  # the kubelet's default workdir
NAMESPACE = "mapreduce"
DECLARED_RESOURCES = ("v1/pods", "v1/events", "v1/secrets")


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_SET_REQUIREMENT = re.compile(r"^(\S+)\s+(in|notin)\s+\((.*)\)$")


def label_selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Whether `labels` satisfy a label selector: `k=v`, `k==v`, `k!=v`, `k`, `!k`,
    `k in (a,b)`, `k notin (a,b)`, comma-separated (all must hold)."""
    requirements = [r.strip() for r in re.split(r",(?![^()]*\))", selector) if r.strip()]
    for requirement in requirements:
        if match := _SET_REQUIREMENT.match(requirement):
            key, op, values = match[1], match[2], {v.strip() for v in match[3].split(",")}
            if (op == "in") != (key in labels and labels[key] in values):
                return False
        elif "!=" in requirement:
            key, value = (part.strip() for part in requirement.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in requirement:
            key, value = (part.strip() for part in re.split("==?", requirement, maxsplit=1))
            if labels.get(key) != value:
                return False
        elif requirement.startswith("!"):
            if requirement[1:].strip() in labels:
                return False
        elif requirement not in labels:
            return False
    return True


def _labels(obj: Any) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {}) if isinstance(obj, dict) else {}


@dataclass
class LogLine:
    time: dt.datetime
    text: bytes  # one line, newline included


@dataclass
class ContainerLog:
    """Output of one container, appended by the kubelet, read by the log endpoint."""

    lines: list[LogLine] = field(default_factory=list)
    finished: bool = False

    def append(self, text: bytes) -> None:
        self.lines.append(LogLine(dt.datetime.now(dt.UTC), text))


LogLookup = Callable[[str, str], ContainerLog | None]


class KubernetesAPI(kmock.KubernetesEmulator):  # type: ignore[misc]
    """kmock's emulator with the gaps above closed, for pods driven by a test kubelet."""

    created_pods: list[dict[str, Any]]
    created_jobs: list[dict[str, Any]]
    log_lookup: LogLookup

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if raw_request.query.get("watch", "").lower() == "true":
            query = {**raw_request.query, "watch": "true"}
            raw_request = raw_request.clone(rel_url=raw_request.rel_url.with_query(query))
        return await super().__call__(raw_request)

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if request.resource == PODS and request.subresource == "log":
            return await self._serve_log(request)
        if request.resource == PODS and request.subresource in ("exec", "attach"):
            raise kmock.KubernetesError(
                status=400, reason="BadRequest", message="the test emulator has no exec/attach"
            )
        if request.resource == PODS and request.action == kmock.action.CREATE:
            pod = request.data
            pod.setdefault("metadata", {}).update(
                uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339(), resourceVersion="1"
            )
            pod["metadata"].setdefault("namespace", request.namespace)
            pod["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
            self.created_pods.append(json.loads(json.dumps(pod)))
        if request.resource == JOBS and request.action == kmock.action.CREATE:
            job = request.data
            job.setdefault("metadata", {}).update(
                uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339(), resourceVersion="1"
            )
            job["metadata"].setdefault("namespace", request.namespace)
            job["status"] = {}  # an API server ignores a submitted status; the controller sets it
            self.created_jobs.append(json.loads(json.dumps(job)))
        return await super()._handle(request)

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        payload = await super()._serve_list(request)
        if selector := request.params.get("labelSelector"):
            payload["items"] = [
                item for item in payload["items"] if label_selector_matches(selector, _labels(item))
            ]
        return payload

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[rendering.Payload]:
        selector = request.params.get("labelSelector")
        async for event in super()._serve_watch(request):
            if isinstance(event, dict) and selector:
                object_labels = _labels(event.get("object"))
                if not label_selector_matches(selector, object_labels):
                    continue
            yield event

    async def _serve_log(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        raw = request._raw_request  # a streamed (follow) answer needs the aiohttp request
        params = {k: v.lower() if v in ("True", "False") else v for k, v in request.params.items()}
        log = self.log_lookup(request.namespace or "", request.name or "")
        if log is None:
            raise kmock.KubernetesError(
                status=400,
                reason="BadRequest",
                message=f"container of pod {request.name} is waiting to start",
            )
        since = None
        if "sinceSeconds" in params:
            since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=int(params["sinceSeconds"]))
        elif "sinceTime" in params:
            since = dt.datetime.fromisoformat(params["sinceTime"].replace("Z", "+00:00"))
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(raw)
        sent = 0
        while True:
            finished = log.finished  # read before the lines: none may be missed
            lines = log.lines[sent:]
            sent += len(lines)
            for line in lines:
                if since is None or line.time >= since:
                    prefix = b""
                    if params.get("timestamps") == "true":
                        stamp = line.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                        prefix = stamp.encode() + b" "
                    await response.write(prefix + line.text)
            if finished or params.get("follow") != "true":
                break
            await asyncio.sleep(0.05)
        await response.write_eof()
        return response


class EmulatedCluster:
    """The API emulator served on 127.0.0.1 from a background thread with its own loop."""

    def __init__(self, extra_resources: tuple[str, ...] = ()) -> None:
        """`extra_resources`: more kinds to serve, e.g. ("batch/v1/jobs",)."""
        self.api = KubernetesAPI()
        self.api.created_pods = []
        self.api.created_jobs = []
        self.api.log_lookup = lambda namespace, name: None
        for resource in (*DECLARED_RESOURCES, *extra_resources):
            self.api.resources[resource] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: kmock.Server | None = None
        self.url = ""

    def start(self) -> EmulatedCluster:
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # one line per request
        self._thread.start()
        self._server = kmock.Server(self.api)
        self._run(self.api.__aenter__())
        self._run(self._server.__aenter__())
        self.url = str(self._server.url).rstrip("/")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._run(self._server.__aexit__(None, None, None))
            self._run(self.api.__aexit__(None, None, None))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    @property
    def created_pods(self) -> list[dict[str, Any]]:
        """Every pod as it was submitted (plus uid/status), in creation order."""
        return list(self.api.created_pods)

    @property
    def created_jobs(self) -> list[dict[str, Any]]:
        """Every Job as it was submitted (plus uid/creationTimestamp), in creation order."""
        return list(self.api.created_jobs)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:
            return json.loads(response.read())

    def pods(self, namespace: str) -> list[dict[str, Any]]:
        """The pods that exist now in `namespace` (deleted ones are gone)."""
        return list(self.get(f"/api/v1/namespaces/{namespace}/pods")["items"])

    def jobs(self, namespace: str) -> list[dict[str, Any]]:
        """The Jobs that exist now in `namespace`, with their current status."""
        return list(self.get(f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"])

    def create_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        import base64

        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        }
        request = urllib.request.Request(
            f"{self.url}/api/v1/namespaces/{namespace}/secrets",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10):
            pass

    def api_client(self) -> Any:
        """A kubernetes.client.ApiClient for the emulator (plain HTTP, no credentials)."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        return client.ApiClient(configuration)

    def kubeconfig(self, namespace: str = "default") -> dict[str, Any]:
        """A kubeconfig for the emulator: plain HTTP on 127.0.0.1, no credentials."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulated", "cluster": {"server": self.url}}],
            "users": [{"name": "test", "user": {}}],
            "contexts": [
                {
                    "name": "emulated",
                    "context": {"cluster": "emulated", "user": "test", "namespace": namespace},
                }
            ],
            "current-context": "emulated",
        }

    def airflow_connection_json(self, namespace: str = "default") -> str:
        """Value for AIRFLOW_CONN_KUBERNETES_DEFAULT: a kubernetes connection to the emulator."""
        return json.dumps(
            {
                "conn_type": "kubernetes",
                "extra": {"kube_config": self.kubeconfig(namespace), "namespace": namespace},
            }
        )


@contextmanager
def emulated_cluster(workdir: Path = REPO_DAGS, namespace: str = NAMESPACE) -> Iterator[Any]:
    """An emulator and a kubelet running pods with `workdir` as their working directory."""
    from tests.kubernetes.kubelet import TestKubelet

    cluster = EmulatedCluster().start()
    kubelet = TestKubelet(cluster, workdir=workdir, namespace=namespace)
    cluster.api.log_lookup = kubelet.container_log
    kubelet.start()
    try:
        yield cluster, kubelet
    finally:
        kubelet.stop()
        cluster.stop()
