"""Work-queue backends on the Airflow side: the map phase as ONE task that enqueues the
plan's map task specs and waits while workers pull them.

``local_pool``      MapReduceQueuePoolOperator: N local worker processes (the local twin).
``kubernetes_job``  MapReduceQueueJobOperator: one Indexed Kubernetes Job of N pods
                    (KubernetesJobOperator), each running the worker in pull mode.

Both read the map task specs from the plan in storage (XCom holds only the plan's URI,
however many map tasks there are), enqueue those not committed yet (so a retry redoes
only the unfinished ones), log progress every few seconds, fail when more map tasks than
allowed were dead-lettered, and delete the run's queue state at the end. The reduce phase
stays dynamically mapped: it has few tasks and starts after this one, that is, only once
every map task is committed.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context

from airflow_mapreduce.errors import TaskFailedError
from airflow_mapreduce.job.models import JobSpec
from airflow_mapreduce.job.queue import QueueSpec
from airflow_mapreduce.plan.manifests import pending_map_specs, read_task_spec
from airflow_mapreduce.queue import QUEUE_URL_ENV, QueueError, QueuePolicy, WorkQueue
from airflow_mapreduce.queue.base import open_queue, queue_name
from airflow_mapreduce.queue.progress import wait_until_finished
from airflow_mapreduce.storage import FileSystems

JOB_STATUS_INTERVAL_SECONDS = 10.0


def queue_url_from_connection(conn_id: str) -> str:
    """The queue URL from an Airflow connection (conn type redis or nats). It holds the
    password: hand it only to worker env, never to logs, XCom or templates."""
    from urllib.parse import quote

    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    conn_type = (conn.conn_type or "").lower()
    extra = conn.extra_dejson
    user = quote(conn.login or "", safe="")
    password = quote(conn.password or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = conn.host or "127.0.0.1"
    if conn_type == "redis":
        scheme = "rediss" if extra.get("ssl") else "redis"
        return f"{scheme}://{auth}{host}:{conn.port or 6379}/{int(extra.get('db', 0))}"
    if conn_type == "nats":
        scheme = "tls" if extra.get("tls") else "nats"
        return f"{scheme}://{auth}{host}:{conn.port or 4222}"
    raise QueueError(
        f"Airflow connection {conn_id!r} has conn_type {conn.conn_type!r}; a queue connection "
        "must be of type 'redis' (host, port, password, extra db/ssl) or 'nats' (host, port, "
        "login/password, extra tls)"
    )


def queue_policy(spec: QueueSpec) -> QueuePolicy:
    return QueuePolicy(
        max_attempts=spec.max_attempts,
        backoff_seconds=spec.backoff_seconds,
        max_backoff_seconds=spec.max_backoff_seconds,
        visibility_timeout_seconds=spec.visibility_timeout_seconds,
    )


class _QueueRun:
    """What both operators do around the workers: enqueue, watch, judge, clean up."""

    def __init__(self, operator: BaseOperator, spec: QueueSpec, context: Context) -> None:
        self.operator = operator
        self.spec = spec
        self.name = queue_name(operator.dag_id, context["run_id"])
        self.url = queue_url_from_connection(spec.conn_id)
        self.queue: WorkQueue = open_queue(self.url, self.name)

    def enqueue(self, files: FileSystems, plan_uri: str) -> list[str]:
        """Enqueue the run's uncommitted map tasks; return their spec URIs."""
        pending, total = pending_map_specs(files, plan_uri)
        new = self.queue.enqueue(pending, queue_policy(self.spec)) if pending else 0
        self.operator.log.info(
            "Queue %s: %d map task(s), %d committed by an earlier attempt, %d newly enqueued",
            self.name, total, total - len(pending), new,
        )  # fmt: skip
        return pending

    def wait(self, check: Callable[[], None]) -> None:
        progress = wait_until_finished(
            self.queue,
            log=lambda line: self.operator.log.info("map queue %s: %s", self.name, line),
            interval=self.spec.progress_interval_seconds,
            check=check,
        )
        if progress.dead > self.spec.dead_letter_allowance:
            letters = self.queue.dead_letters()
            listed = "\n".join(f"  - {d.item} ({d.attempts} attempts): {d.error}" for d in letters)
            raise TaskFailedError(
                f"{progress.dead} map task(s) failed {self.spec.max_attempts} times and were "
                f"dead-lettered (allowance: queue.dead_letter_allowance = "
                f"{self.spec.dead_letter_allowance}):\n{listed}"
            )

    def clean_up(self) -> None:
        try:
            self.queue.purge()
        finally:
            self.queue.close()

    def __enter__(self) -> _QueueRun:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.clean_up()  # done or failed, the run's queue goes: a retry enqueues afresh


class MapReduceQueuePoolOperator(BaseOperator):
    """``local_pool``: N worker processes on this machine pull the map tasks."""

    template_fields: Sequence[str] = ("plan_uri",)
    ui_color = "#f3e8fd"

    def __init__(
        self,
        *,
        plan_uri: Any,
        queue_spec: QueueSpec,
        aws_conn_id: str,
        job_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.plan_uri = plan_uri
        self.queue_spec = queue_spec  # (BaseOperator.queue is the executor queue)
        self.aws_conn_id = aws_conn_id
        self.job_dir = job_dir

    def execute(self, context: Context) -> None:
        from airflow_mapreduce.airflow.connections import airflow_filesystems, worker_env
        from airflow_mapreduce.queue.pool import LocalWorkerPool

        files = airflow_filesystems(self.aws_conn_id)
        with _QueueRun(self, self.queue_spec, context) as run:
            pending = run.enqueue(files, self.plan_uri)
            if not pending:
                return
            # All map tasks of a run share their storage: the first one's says what it is.
            uris = [self.plan_uri, pending[0], *read_task_spec(files, pending[0]).storage_uris()]
            env = worker_env(self.aws_conn_id, uris, None)  # the pool adds the job folder
            pool = LocalWorkerPool(
                run.url, run.name, self.queue_spec.workers, cwd=self.job_dir, env=env
            ).start()
            self.log.info("Started %d local worker(s) on queue %s", pool.workers, run.name)
            try:
                run.wait(check=pool.check)
            finally:
                pool.stop(grace=30)  # finished workers exit by themselves within ~1 s


@functools.cache  # one class, however many DAGs use it
def _job_operator_class() -> type[Any]:
    from airflow.providers.cncf.kubernetes.operators.job import KubernetesJobOperator

    class MapReduceQueueJobOperator(KubernetesJobOperator):
        """``kubernetes_job``: one Indexed Job whose pods pull the map tasks."""

        template_fields: Sequence[str] = (*KubernetesJobOperator.template_fields, "plan_uri")

        def __init__(
            self, *, plan_uri: Any, queue_spec: QueueSpec, aws_conn_id: str, **kwargs: Any
        ) -> None:
            super().__init__(**kwargs)
            self.plan_uri = plan_uri
            self.queue_spec = queue_spec
            self.aws_conn_id = aws_conn_id

        def execute(self, context: Context) -> None:
            from airflow_mapreduce.airflow.connections import airflow_filesystems

            with _QueueRun(self, self.queue_spec, context) as run:
                if not run.enqueue(airflow_filesystems(self.aws_conn_id), self.plan_uri):
                    return  # every map task was committed by an earlier attempt: no Job
                self.arguments = ["--pull", run.name]
                super().execute(context)  # creates the Job; we watch the queue instead
                run.wait(check=self._job_check(run.queue))

        def _job_check(self, queue: WorkQueue) -> Callable[[], None]:
            """Every JOB_STATUS_INTERVAL_SECONDS: fail when the Job can no longer finish
            the queue (failed, or completed with work left), or when no map task was
            taken within startup_timeout_seconds (pods stuck in Pending: a missing Secret,
            an image that cannot be pulled, no node fits)."""
            created = time.monotonic()
            last = [created]

            def check() -> None:
                if time.monotonic() - last[0] < JOB_STATUS_INTERVAL_SECONDS:
                    return
                last[0] = time.monotonic()
                name, namespace = self.job.metadata.name, self.job.metadata.namespace  # type: ignore[union-attr]
                job = self.hook.get_job_status(name, namespace)
                if failed := _job_condition(job, "Failed"):
                    raise TaskFailedError(
                        f"Kubernetes Job {name} failed before the map queue finished: "
                        f"{_reason(failed)}"
                    )
                if _job_condition(job, "Complete"):
                    raise TaskFailedError(
                        f"Kubernetes Job {name} completed, but the map queue is not finished: "
                        "its pods exited with map tasks left. Does the queue URL in the "
                        "Secret queue.secret point to the same server and database as the "
                        "Airflow connection queue.conn_id?"
                    )
                waited = time.monotonic() - created
                if waited > self.startup_timeout_seconds and not _anything_taken(queue):
                    raise TaskFailedError(
                        f"no pod of Kubernetes Job {name} took a map task within "
                        f"kubernetes.startup_timeout_seconds ({self.startup_timeout_seconds} s): "
                        f"{self._pod_states(name, namespace)}"
                    )

            return check

        def _pod_states(self, job_name: str, namespace: str) -> str:
            """Why the Job's pods do not run: phase and waiting reason of a few of them."""
            pods = self.hook.core_v1_client.list_namespaced_pod(
                namespace, label_selector=f"job-name={job_name}"
            ).items
            states = []
            for pod in pods[:5]:
                status = pod.status
                waiting = [
                    c.state.waiting
                    for c in (status.container_statuses or [])
                    if c.state is not None and c.state.waiting is not None
                ]
                unscheduled = [
                    c
                    for c in (status.conditions or [])
                    if c.type == "PodScheduled" and c.status == "False"
                ]
                reasons = [_reason(r) for r in [*waiting, *unscheduled]]
                why = "; ".join(reasons) or "no reason given"
                states.append(f"{pod.metadata.name} {status.phase} ({why})")
            more = f" and {len(pods) - 5} more" if len(pods) > 5 else ""
            return ", ".join(states) + more if states else "the Job has no pods"

    return MapReduceQueueJobOperator


def _job_condition(job: Any, kind: str) -> Any:
    """The Job's condition of this type if it holds. (The provider's is_job_failed and
    is_job_successful take any status string as true, "False" included.)"""
    conditions = (job.status.conditions if job.status else None) or []
    return next((c for c in conditions if c.type == kind and c.status == "True"), None)


def _reason(state: Any) -> str:
    """ "Reason: message" of a Kubernetes condition or container state."""
    return f"{state.reason}: {state.message}" if state.message else str(state.reason)


def _anything_taken(queue: WorkQueue) -> bool:
    progress = queue.progress()
    return bool(progress.done or progress.in_flight or progress.dead or progress.retried)


def queue_job_arguments(job: JobSpec) -> dict[str, Any]:
    """KubernetesJobOperator arguments: the map pods' settings plus the queue's."""
    from kubernetes.client import models as k8s

    from airflow_mapreduce.airflow.backends import pod_arguments

    spec = job.queue
    pod = pod_arguments(job, "map")
    url_from_secret = k8s.V1EnvVar(
        name=QUEUE_URL_ENV,
        value_from=k8s.V1EnvVarSource(
            secret_key_ref=k8s.V1SecretKeySelector(name=spec.secret, key="url")
        ),
    )
    pod["env_vars"] = [*pod["env_vars"], url_from_secret]
    pod.update(get_logs=False)  # the queue reports progress, not logs
    pod.pop("on_finish_action", None)
    return {
        **pod,
        "completion_mode": "Indexed",
        "completions": spec.workers,
        "parallelism": spec.workers,
        # A pod killed mid-task loses nothing (its task returns to the queue); the Job
        # replaces it, within this budget, to keep `workers` pullers running.
        "backoff_limit": max(6, spec.workers * spec.max_attempts),
        "ttl_seconds_after_finished": 3600,
        "wait_until_job_complete": False,
        "deferrable": False,
    }


def add_queue_map_task(
    job: JobSpec, plan_uri: Any, job_dir: str | None, task_id: str = "run_map_queue"
) -> BaseOperator:
    """The map phase of a work-queue backend: one task instead of a mapped one."""
    from airflow_mapreduce.airflow.backends import task_arguments

    common = {
        **task_arguments(job, task_id),
        "plan_uri": plan_uri,
        "queue_spec": job.queue,
        "aws_conn_id": job.storage.aws_conn_id,
    }
    if job.backend == "kubernetes_job":
        operator: BaseOperator = _job_operator_class()(**common, **queue_job_arguments(job))
        return operator
    return MapReduceQueuePoolOperator(**common, job_dir=job_dir)
