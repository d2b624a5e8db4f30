"""Work-queue backends on the Airflow side: the map phase as ONE task that enqueues the
plan's map task specs and waits while workers pull them.

``local_pool``      MapReduceQueuePoolOperator: N local worker processes (the local twin).
``kubernetes_job``  MapReduceQueueJobOperator: one Indexed Kubernetes Job of N pods
                    (KubernetesJobOperator), each running the worker in pull mode.

Both read the map task specs from the plan in storage (XCom holds only the plan's URI,
however many map tasks there are), enqueue those not committed yet (so a retry redoes
only the unfinished ones), then wait DEFERRED: a trigger (triggers/work_queue.py) logs
progress in the triggerer, watches the workers and fires once the queue is finished;
execute_complete fails the task when more map tasks than allowed were dead-lettered, and
the run's queue state is deleted however the wait ended. With ``deferrable=False`` the
same trigger runs in the worker instead. The reduce phase stays dynamically mapped: it
has few tasks and starts after this one, that is, only once every map task is committed.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import TaskDeferred

from airflow_mapreduce.errors import TaskFailedError
from airflow_mapreduce.hooks.work_queue import WorkQueueHook
from airflow_mapreduce.job.models import JobSpec
from airflow_mapreduce.job.queue import QueueSpec
from airflow_mapreduce.plan.manifests import pending_map_specs, read_task_spec
from airflow_mapreduce.queue import QUEUE_URL_ENV, QueuePolicy, WorkQueue
from airflow_mapreduce.queue.base import open_queue, queue_name
from airflow_mapreduce.storage import FileSystems
from airflow_mapreduce.triggers.work_queue import (
    IndexedJobProgressTrigger,
    LocalPoolProgressTrigger,
    WorkQueueProgressTrigger,
    first_event,
    local_processes,
)

JOB_STATUS_INTERVAL_SECONDS = 10.0


def queue_policy(spec: QueueSpec) -> QueuePolicy:
    return QueuePolicy(
        max_attempts=spec.max_attempts,
        backoff_seconds=spec.backoff_seconds,
        max_backoff_seconds=spec.max_backoff_seconds,
        visibility_timeout_seconds=spec.visibility_timeout_seconds,
    )


class _QueueRun:
    """What both operators do around the workers: enqueue, wait, judge, clean up.

    The queue is named after the operator's `job_name` (two jobs of one DAG have their
    own) and the run. As a context manager it deletes the run's queue state on the way
    out, done or failed, so a retry enqueues afresh; not when the task defers (the
    trigger waits on it).
    """

    def __init__(self, operator: Any, spec: QueueSpec, context: Context) -> None:
        self.operator = operator
        self.spec = spec
        self.name = queue_name(operator.job_name or operator.dag_id, context["run_id"])
        self.hook = WorkQueueHook(spec.conn_id)

    @functools.cached_property
    def url(self) -> str:
        """The queue URL with its password: for the queue client and worker env only."""
        return self.hook.get_url()

    @functools.cached_property
    def queue(self) -> WorkQueue:
        return open_queue(self.url, self.name)

    def enqueue(self, files: FileSystems, plan_uri: str) -> list[str]:
        """Enqueue the run's uncommitted map tasks; return their spec URIs."""
        # State an earlier try left (killed while deferred) would make its items count as
        # enqueued already; what is committed is read from storage, not from the queue.
        self.queue.purge()
        pending, total = pending_map_specs(files, plan_uri)
        new = self.queue.enqueue(pending, queue_policy(self.spec)) if pending else 0
        self.operator.log.info(
            "Queue %s: %d map task(s), %d committed by an earlier attempt, %d newly enqueued",
            self.name, total, total - len(pending), new,
        )  # fmt: skip
        return pending

    def trigger_arguments(self) -> dict[str, Any]:
        interval = self.spec.progress_interval_seconds
        return {
            "conn_id": self.spec.conn_id,
            "queue": self.name,
            "progress_interval": interval,
            "poll_interval": min(1.0, interval),
        }

    def wait(
        self,
        trigger: WorkQueueProgressTrigger,
        deferrable: bool,
        stop_workers: Callable[[], None] = lambda: None,
    ) -> None:
        """Defer to `trigger`; or run it here, then stop the workers and judge its event."""
        if deferrable:
            self.operator.defer(trigger=trigger, method_name="execute_complete")
        try:
            event = asyncio.run(first_event(trigger))
        finally:
            stop_workers()
        self.judge(event)

    def judge(self, event: dict[str, Any]) -> None:
        """Fail the task if the map phase failed; else log how it ended."""
        if event["status"] != "finished":
            raise TaskFailedError(event["message"])
        dead = int(event["progress"]["dead"])
        if dead > self.spec.dead_letter_allowance:
            letters = self.queue.dead_letters()
            listed = "\n".join(f"  - {d.item} ({d.attempts} attempts): {d.error}" for d in letters)
            raise TaskFailedError(
                f"{dead} map task(s) failed {self.spec.max_attempts} times and were "
                f"dead-lettered (allowance: queue.dead_letter_allowance = "
                f"{self.spec.dead_letter_allowance}):\n{listed}"
            )
        self.operator.log.info("Map queue %s finished: %s", self.name, event["message"])

    def clean_up(self) -> None:
        try:
            self.queue.purge()
        finally:
            self.queue.close()

    def __enter__(self) -> _QueueRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        if exc_type is not None and issubclass(exc_type, TaskDeferred):
            if "queue" in self.__dict__:
                self.queue.close()
            return
        self.clean_up()


class _DeferredQueueWait:
    """The end of a map phase's deferred wait, shared by the pool and the Job operator."""

    queue_spec: QueueSpec

    def execute_complete(self, context: Context, event: dict[str, Any], **kwargs: Any) -> None:
        _QueueRun(cast(BaseOperator, self), self.queue_spec, context).judge(event)

    def resume_execution(
        self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context
    ) -> Any:
        # However the deferred wait ended (finished, failed, Airflow's timeout), the queue goes.
        with _QueueRun(cast(BaseOperator, self), self.queue_spec, context):
            return super().resume_execution(next_method, next_kwargs, context)  # type: ignore[misc]


class MapReduceQueuePoolOperator(_DeferredQueueWait, BaseOperator):
    """``local_pool``: N worker processes on this machine pull the map tasks.

    :param job_name: names the run's queue: the DAG's id (default), or
        ``<dag_id>.<group_id>`` for a job inside a task group.
    :param deferrable: wait in the triggerer (default; the workers outlive this task's
        process and exit once the queue is finished) or here, in the worker slot.
    """

    template_fields: Sequence[str] = ("plan_uri",)
    ui_color = "#f3e8fd"

    def __init__(
        self,
        *,
        plan_uri: Any,
        queue_spec: QueueSpec,
        aws_conn_id: str,
        job_dir: str | None = None,
        job_name: str | None = None,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.plan_uri = plan_uri
        self.queue_spec = queue_spec  # (BaseOperator.queue is the executor queue)
        self.aws_conn_id = aws_conn_id
        self.job_dir = job_dir
        self.job_name = job_name
        self.deferrable = deferrable

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
            trigger = LocalPoolProgressTrigger(
                **run.trigger_arguments(),
                host=socket.gethostname(),
                workers=local_processes(p.pid for p in pool.processes),
            )
            # Deferred, the workers go on without this process; they exit by themselves
            # within ~1 s once the queue is finished (or its state deleted).
            run.wait(trigger, self.deferrable, stop_workers=lambda: pool.stop(grace=30))


@functools.cache  # one class, however many DAGs use it
def _job_operator_class() -> type[Any]:
    from airflow.providers.cncf.kubernetes.operators.job import KubernetesJobOperator

    class MapReduceQueueJobOperator(_DeferredQueueWait, KubernetesJobOperator):
        """``kubernetes_job``: one Indexed Job whose pods pull the map tasks.

        :param job_name: names the run's queue (as for MapReduceQueuePoolOperator).
        :param deferrable: wait for the queue in the triggerer (default) or in the worker.
            (Not the provider's own wait for the Job, which this operator does not use.)
        """

        template_fields: Sequence[str] = (*KubernetesJobOperator.template_fields, "plan_uri")

        def __init__(
            self,
            *,
            plan_uri: Any,
            queue_spec: QueueSpec,
            aws_conn_id: str,
            job_name: str | None = None,
            deferrable: bool = True,
            **kwargs: Any,
        ) -> None:
            super().__init__(deferrable=False, **kwargs)
            self.plan_uri = plan_uri
            self.queue_spec = queue_spec
            self.aws_conn_id = aws_conn_id
            self.job_name = job_name
            self.deferrable = deferrable

        def execute(self, context: Context) -> None:
            from airflow_mapreduce.airflow.connections import airflow_filesystems

            with _QueueRun(self, self.queue_spec, context) as run:
                if not run.enqueue(airflow_filesystems(self.aws_conn_id), self.plan_uri):
                    return  # every map task was committed by an earlier attempt: no Job
                self.arguments = ["--pull", run.name]
                # Only the Job is created: the provider's execute() would wait for the Job
                # itself (or warn that `deferrable` needs wait_until_job_complete).
                self.job = self.create_job(self.build_job_request_obj(context))  # for on_kill
                trigger = IndexedJobProgressTrigger(
                    **run.trigger_arguments(),
                    job_name=self.job.metadata.name,
                    namespace=self.job.metadata.namespace,
                    kubernetes_conn_id=self.kubernetes_conn_id,
                    in_cluster=self.in_cluster,
                    config_file=self.config_file,
                    cluster_context=self.cluster_context,
                    startup_timeout=self.startup_timeout_seconds,
                    created_at=time.time(),
                    status_interval=JOB_STATUS_INTERVAL_SECONDS,
                )
                run.wait(trigger, self.deferrable)

    return MapReduceQueueJobOperator


def queue_job_arguments(job: JobSpec, job_name: str) -> dict[str, Any]:
    """KubernetesJobOperator arguments: the map pods' settings plus the queue's."""
    from kubernetes.client import models as k8s

    from airflow_mapreduce.airflow.backends import pod_arguments

    spec = job.queue
    pod = pod_arguments(job, "map", job_name)
    # kubernetes.deferrable is the reduce pods' way to wait; the queue's wait defers anyway.
    pod.pop("deferrable")
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
    }


def add_queue_map_task(
    job: JobSpec,
    plan_uri: Any,
    job_dir: str | None,
    task_id: str = "run_map_queue",
    *,
    job_name: str,
    indexed_job: bool,
) -> BaseOperator:
    """The map phase of a work-queue backend: one task instead of a mapped one, pulled by
    an Indexed Job's pods (`indexed_job`) or by local worker processes.

    `job_name` (Backend.map_tasks' job_name) names the run's queue and the Indexed Job's
    pods.
    """
    from airflow_mapreduce.airflow.backends import task_arguments

    name = job_name
    common = {
        **task_arguments(job, task_id),
        "plan_uri": plan_uri,
        "queue_spec": job.queue,
        "aws_conn_id": job.storage.aws_conn_id,
        "job_name": name,
        "deferrable": job.queue.deferrable,
    }
    if indexed_job:
        operator: BaseOperator = _job_operator_class()(**common, **queue_job_arguments(job, name))
        return operator
    return MapReduceQueuePoolOperator(**common, job_dir=job_dir)
