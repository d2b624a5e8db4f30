"""TEST-ONLY Job controller: runs the batch/v1 Jobs of an emulated cluster as pods.

Like the test kubelet (tests/kubernetes/kubelet.py) it is a polling thread that talks to
the API emulator over HTTP with the official Kubernetes Python client, as the Job
controller of kube-controller-manager does. For every Job of its namespace it:

- creates pods from `spec.template`, at most `spec.parallelism` running at once. With
  `completionMode: Indexed` there is one index per completion (0..completions-1) and each
  pod gets the annotation and label `batch.kubernetes.io/job-completion-index` and the env
  var JOB_COMPLETION_INDEX; every pod gets the labels `job-name`,
  `batch.kubernetes.io/job-name`, `controller-uid`, `batch.kubernetes.io/controller-uid`,
  an ownerReference to its Job and a name `<job>-<index>-<random5>` (NonIndexed:
  `<job>-<random5>`, and completions successful pods in any order);
- tracks the pods' phases (set by the kubelet): a Succeeded pod completes its index; a
  Failed pod counts in `status.failed` and is replaced (a new pod for the same index)
  until the failures exceed `spec.backoffLimit` (default 6); then the Job gets the
  condition Failed, reason BackoffLimitExceeded, and its running pods are deleted;
- keeps `status.active/ready/succeeded/failed`, `completedIndexes`, `startTime`,
  `completionTime` and the final condition (Complete or Failed, status "True") through
  the Job's status subresource: what KubernetesHook.get_job_status / is_job_failed /
  is_job_successful / wait_until_job_complete read;
- deletes the pods of a deleted Job (the kubelet then kills their processes), whatever
  the propagation policy.

Not emulated: `restartPolicy: OnFailure` (a failed container is never restarted in its
pod: the pod fails and is replaced, as with Never), JOB_COMPLETION_INDEX through the
downward API (the kubelet resolves no fieldRef, so it is a plain value), pod hostnames and
subdomains, `activeDeadlineSeconds`, `suspend`, `podFailurePolicy`, `successPolicy`,
`backoffLimitPerIndex`, `ttlSecondsAfterFinished`, work-queue Jobs (completions unset:
taken as 1), pod finalizers and the
FailureTarget / SuccessCriteriaMet conditions, the exponential back-off delay before a
failed pod is replaced, and `spec.selector` matching (pods are found by ownerReference).
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import string
from dataclasses import dataclass, field
from typing import Any

from tests.kubernetes.emulator import EmulatedCluster, now_rfc3339
from tests.kubernetes.polling import PollingController

INDEX_KEY = "batch.kubernetes.io/job-completion-index"
TERMINAL = ("Succeeded", "Failed")


@dataclass
class JobRun:
    """What the controller remembers of one Job (by uid), beyond what pods show."""

    name: str
    uid: str
    start_time: str
    succeeded: set[int] = field(default_factory=set)  # completed indexes
    failed_pods: set[str] = field(default_factory=set)
    counted_pods: set[str] = field(default_factory=set)  # Succeeded pods already counted
    finished: bool = False
    status: dict[str, Any] = field(default_factory=dict)  # last written


class TestJobController(PollingController):
    """Runs every batch/v1 Job of one namespace of an EmulatedCluster as pods."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, cluster: EmulatedCluster, *, namespace: str = "default") -> None:
        from kubernetes import client

        super().__init__("test-job-controller")
        api_client = cluster.api_client()
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.namespace = namespace
        self.runs: dict[str, JobRun] = {}  # by Job uid

    def _list(self, method: Any) -> list[dict[str, Any]]:
        # Raw JSON: pod templates stay in the API's own (camelCase) form.
        response = method(self.namespace, _preload_content=False)
        return list(json.loads(response.data)["items"])

    def sync(self) -> None:
        """One reconciliation round over every Job and pod of the namespace."""
        jobs = self._list(self.batch.list_namespaced_job)
        pods = self._list(self.core.list_namespaced_pod)
        owned: dict[str, list[dict[str, Any]]] = {}
        for pod in pods:
            for ref in pod["metadata"].get("ownerReferences") or []:
                if ref.get("kind") == "Job" and ref.get("controller"):
                    owned.setdefault(ref["uid"], []).append(pod)
        present = set()
        for job in jobs:
            uid = job["metadata"]["uid"]
            present.add(uid)
            run = self.runs.get(uid)
            if run is None:
                run = self.runs[uid] = JobRun(job["metadata"]["name"], uid, now_rfc3339())
            self._reconcile(job, run, owned.get(uid, []))
        for uid, job_pods in owned.items():
            if uid not in present:  # the Job was deleted: so are its pods
                for pod in job_pods:
                    self._delete_pod(pod)

    def _reconcile(self, job: dict[str, Any], run: JobRun, pods: list[dict[str, Any]]) -> None:
        spec = job["spec"]
        indexed = spec.get("completionMode") == "Indexed"
        completions = spec.get("completions") or 1
        parallelism = spec.get("parallelism", 1)
        backoff_limit = spec.get("backoffLimit", 6)
        active: list[dict[str, Any]] = []
        for pod in pods:
            name = pod["metadata"]["name"]
            phase = (pod.get("status") or {}).get("phase")
            if phase == "Succeeded":
                if name not in run.counted_pods:
                    run.counted_pods.add(name)
                    run.succeeded.add(self._index(pod, indexed, len(run.counted_pods) - 1))
            elif phase == "Failed":
                run.failed_pods.add(name)
            elif not (pod["metadata"].get("deletionTimestamp")):
                active.append(pod)
        if run.finished:
            return
        conditions: list[dict[str, Any]] = []
        if len(run.failed_pods) > backoff_limit:
            for pod in active:
                self._delete_pod(pod)
            active = []
            conditions = [self._condition(
                "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"
            )]  # fmt: skip
        elif len(run.succeeded) >= completions:
            conditions = [self._condition("Complete", "", "")]
        else:
            active += self._start_pods(job, run, active, indexed, completions, parallelism)
        status: dict[str, Any] = {
            "startTime": run.start_time,
            "active": len(active),
            "ready": sum(1 for p in active if (p.get("status") or {}).get("phase") == "Running"),
            "succeeded": len(run.succeeded),
            "failed": len(run.failed_pods),
        }
        if indexed:
            status["completedIndexes"] = self._ranges(sorted(run.succeeded))
        if conditions:
            run.finished = True
            status["conditions"] = conditions
            if conditions[0]["type"] == "Complete":
                status["completionTime"] = conditions[0]["lastTransitionTime"]
        if status != run.status:
            self.batch.patch_namespaced_job_status(
                run.name, self.namespace, {"status": status}
            )  # an exception leaves run.status stale: the next round writes again
            run.status = status

    def _start_pods(self, job: dict[str, Any], run: JobRun, active: list[dict[str, Any]],
                    indexed: bool, completions: int, parallelism: int) -> list[Any]:  # fmt: skip
        started: list[dict[str, Any]] = []
        if indexed:
            busy = {self._index(p, indexed, -1) for p in active}
            wanted = [i for i in range(completions) if i not in run.succeeded and i not in busy]
        else:
            wanted = [-1] * max(0, completions - len(run.succeeded) - len(active))
        for index in wanted[: max(0, parallelism - len(active))]:
            pod = self._pod(job, index if indexed else None)
            self.core.create_namespaced_pod(self.namespace, pod)
            started.append(pod)
        return started

    def _pod(self, job: dict[str, Any], index: int | None) -> dict[str, Any]:
        name, uid = job["metadata"]["name"], job["metadata"]["uid"]
        template = copy.deepcopy(job["spec"]["template"])
        metadata = template.get("metadata") or {}
        labels = {
            **(metadata.get("labels") or {}),
            "job-name": name,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "batch.kubernetes.io/controller-uid": uid,
        }
        annotations = dict(metadata.get("annotations") or {})
        suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        pod_name = f"{name}-{suffix}"
        spec = template["spec"]
        if index is not None:
            pod_name = f"{name}-{index}-{suffix}"
            labels[INDEX_KEY] = annotations[INDEX_KEY] = str(index)
            for container in [*spec.get("initContainers", []), *spec["containers"]]:
                env = [e for e in container.get("env") or [] if e["name"] != "JOB_COMPLETION_INDEX"]
                container["env"] = [*env, {"name": "JOB_COMPLETION_INDEX", "value": str(index)}]
        owner = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": name,
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": self.namespace,
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [owner],
            },
            "spec": spec,
        }

    @staticmethod
    def _index(pod: dict[str, Any], indexed: bool, default: int) -> int:
        if not indexed:
            return default
        return int(pod["metadata"].get("annotations", {}).get(INDEX_KEY, default))

    @staticmethod
    def _condition(kind: str, reason: str, message: str) -> dict[str, Any]:
        now = now_rfc3339()
        condition = {"type": kind, "status": "True", "lastProbeTime": now,
                     "lastTransitionTime": now}  # fmt: skip
        if reason:
            condition.update(reason=reason, message=message)
        return condition

    @staticmethod
    def _ranges(indexes: list[int]) -> str:
        """completedIndexes as the API writes it: "0-2,4"."""
        parts: list[str] = []
        for index in indexes:
            if parts and int(parts[-1].rsplit("-", 1)[-1]) == index - 1:
                parts[-1] = f"{parts[-1].split('-')[0]}-{index}"
            else:
                parts.append(str(index))
        return ",".join(parts)

    def _delete_pod(self, pod: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # gone already
            self.core.delete_namespaced_pod(pod["metadata"]["name"], self.namespace)
