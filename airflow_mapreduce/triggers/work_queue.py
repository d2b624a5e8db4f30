"""The wait of a work-queue map phase, in the triggerer: no worker slot is held while the
workers pull the map tasks.

WorkQueueProgressTrigger polls the run's queue, logs a progress line every
`progress_interval` seconds (the triggerer's log is part of the task's log) and fires
once every map task is done or dead-lettered. Its subclasses also watch the workers, so
that a map phase whose workers can no longer finish fails instead of waiting forever:
LocalPoolProgressTrigger (``local_pool``: the worker processes) and
IndexedJobProgressTrigger (``kubernetes_job``: the Indexed Job and its pods).

The event is ``{"status": "finished" | "failed", "message": ..., "progress": {...}}``;
the operator's execute_complete judges it (dead letters against the allowance).
Arguments are names, numbers and connection ids only: the queue URL, which holds the
password, is read from the Airflow connection where the trigger runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from typing import Any, cast

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_mapreduce.hooks.work_queue import WorkQueueHook
from airflow_mapreduce.queue.base import Progress, WorkQueue, open_queue
from airflow_mapreduce.queue.progress import ProgressMeter


class WorkQueueProgressTrigger(BaseTrigger):
    """Fires when the queue `queue` on connection `conn_id` is finished; workers unwatched.

    :param conn_id: the work-queue Airflow connection (WorkQueueHook).
    :param queue: the run's queue name (queue.base.queue_name).
    :param progress_interval: seconds between progress lines.
    :param poll_interval: seconds between reads of the queue's progress.
    """

    def __init__(
        self,
        *,
        conn_id: str,
        queue: str,
        progress_interval: float = 5.0,
        poll_interval: float = 1.0,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.conn_id = conn_id
        self.queue = queue
        self.progress_interval = progress_interval
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", self.arguments()

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments that re-create this trigger (subclasses add theirs)."""
        return {
            "conn_id": self.conn_id,
            "queue": self.queue,
            "progress_interval": self.progress_interval,
            "poll_interval": self.poll_interval,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        queue = await self._open()
        try:
            yield TriggerEvent(await self._wait(queue))  # type: ignore[no-untyped-call]
        finally:
            await asyncio.to_thread(queue.close)

    async def on_kill(self) -> None:
        """The task was marked failed or cleared while deferred: delete the run's queue
        state, so that its workers find the queue gone and exit."""
        queue = await self._open()
        try:
            await asyncio.to_thread(queue.purge)
        finally:
            await asyncio.to_thread(queue.close)

    async def workers_failure(self, progress: Progress) -> str | None:
        """Why the workers can no longer finish the queue, or None while they may."""
        return None

    async def _open(self) -> WorkQueue:
        url = await WorkQueueHook(self.conn_id).aget_url()
        return await asyncio.to_thread(open_queue, url, self.queue)

    async def _wait(self, queue: WorkQueue) -> dict[str, Any]:
        meter = ProgressMeter()
        next_line = 0.0
        while True:
            progress = await asyncio.to_thread(queue.progress)
            line = meter.describe(progress)
            if progress.finished or time.monotonic() >= next_line:
                self.log.info("map queue %s: %s", self.queue, line)
                next_line = time.monotonic() + self.progress_interval
            if progress.finished:
                return _event("finished", line, progress)
            failure = (
                # Items are enqueued before the wait, so none means the state was deleted.
                f"the map queue {self.queue} has no items: its state was deleted (by a newer "
                "try of this task, by hand, or a queue server restarted without persistence)"
                if progress.total == 0
                else await self.workers_failure(progress)
            )
            if failure is not None:
                # The workers may have finished the queue just after it was read above.
                if (await asyncio.to_thread(queue.progress)).finished:
                    continue
                return _event("failed", failure, progress)
            await asyncio.sleep(self.poll_interval)


class LocalPoolProgressTrigger(WorkQueueProgressTrigger):
    """``local_pool``: fails once every local worker process has exited with work left.

    :param host: the host the workers run on; the processes can only be watched from it.
    :param workers: ``{"pid": ..., "create_time": ...}`` per worker (local_processes):
        the start time tells a worker from a later process that reuses its pid.
    """

    def __init__(self, *, host: str, workers: list[dict[str, float]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.workers = workers
        self._unwatched_logged = False

    def arguments(self) -> dict[str, Any]:
        return {**super().arguments(), "host": self.host, "workers": self.workers}

    async def workers_failure(self, progress: Progress) -> str | None:
        if self.host != socket.gethostname():
            if not self._unwatched_logged:
                self.log.warning(
                    "The local workers run on %s, this triggerer on %s: it cannot see them "
                    "exit; a pool whose workers all died is noticed by execution_timeout only",
                    self.host, socket.gethostname(),
                )  # fmt: skip
                self._unwatched_logged = True
            return None
        if any(_alive(w) for w in self.workers):
            return None
        pids = ", ".join(str(int(w["pid"])) for w in self.workers)
        return (
            f"all {len(self.workers)} local workers (pids {pids}) exited before the map queue "
            f"{self.queue} finished ({progress.done + progress.dead}/{progress.total} settled)"
        )


def local_processes(pids: Iterable[int]) -> list[dict[str, float]]:
    """The LocalPoolProgressTrigger records of processes started here (those still alive)."""
    import psutil  # type: ignore[import-untyped]  # (Airflow's dependency)

    records = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            records.append({"pid": pid, "create_time": psutil.Process(pid).create_time()})
    return records


def _alive(worker: dict[str, float]) -> bool:
    import psutil

    try:
        process = psutil.Process(int(worker["pid"]))
        # An exited worker the triggerer cannot reap (not its child) lingers as a zombie.
        return bool(
            process.create_time() == worker["create_time"]
            and process.status() != psutil.STATUS_ZOMBIE
        )
    except psutil.NoSuchProcess:
        return False


class IndexedJobProgressTrigger(WorkQueueProgressTrigger):
    """``kubernetes_job``: every `status_interval` seconds, fails when the Job can no longer
    finish the queue (failed, or completed with work left), or when no map task was taken
    within `startup_timeout` seconds of `created_at` (pods stuck in Pending: a missing
    Secret, an image that cannot be pulled, no node fits).

    :param created_at: when the Job was created (epoch seconds), so that a triggerer
        restart does not restart the startup timeout.
    """

    def __init__(
        self,
        *,
        job_name: str,
        namespace: str,
        kubernetes_conn_id: str | None,
        startup_timeout: float,
        created_at: float,
        status_interval: float = 10.0,
        in_cluster: bool | None = None,
        config_file: str | None = None,
        cluster_context: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_name = job_name
        self.namespace = namespace
        self.kubernetes_conn_id = kubernetes_conn_id
        self.startup_timeout = startup_timeout
        self.created_at = created_at
        self.status_interval = status_interval
        self.in_cluster = in_cluster
        self.config_file = config_file
        self.cluster_context = cluster_context
        self._last_status = time.monotonic()

    def arguments(self) -> dict[str, Any]:
        return {
            **super().arguments(),
            "job_name": self.job_name,
            "namespace": self.namespace,
            "kubernetes_conn_id": self.kubernetes_conn_id,
            "startup_timeout": self.startup_timeout,
            "created_at": self.created_at,
            "status_interval": self.status_interval,
            "in_cluster": self.in_cluster,
            "config_file": self.config_file,
            "cluster_context": self.cluster_context,
        }

    async def workers_failure(self, progress: Progress) -> str | None:
        if time.monotonic() - self._last_status < self.status_interval:
            return None
        self._last_status = time.monotonic()
        name = self.job_name
        job = await self._hook.get_job_status(name, self.namespace)
        if failed := job_condition(job, "Failed"):
            return f"Kubernetes Job {name} failed before the map queue finished: {reason(failed)}"
        if job_condition(job, "Complete"):
            return (
                f"Kubernetes Job {name} completed, but the map queue is not finished: its pods "
                "exited with map tasks left. Does the queue URL in the Secret queue.secret "
                "point to the same server and database as the Airflow connection queue.conn_id?"
            )
        taken = progress.done or progress.in_flight or progress.dead or progress.retried
        if time.time() - self.created_at > self.startup_timeout and not taken:
            return (
                f"no pod of Kubernetes Job {name} took a map task within "
                f"kubernetes.startup_timeout_seconds ({self.startup_timeout:g} s): "
                f"{await self._pod_states()}"
            )
        return None

    @functools.cached_property
    def _hook(self) -> Any:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook

        return AsyncKubernetesHook(
            conn_id=self.kubernetes_conn_id,
            in_cluster=self.in_cluster,
            config_file=self.config_file,
            cluster_context=self.cluster_context,
        )

    async def _pod_states(self) -> str:
        """Why the Job's pods do not run: phase and waiting reason of a few of them."""
        from kubernetes_asyncio.client import CoreV1Api

        async with self._hook.get_conn() as api:
            listed = await CoreV1Api(api).list_namespaced_pod(
                self.namespace, label_selector=f"job-name={self.job_name}"
            )
        return describe_pods(listed.items)


def job_condition(job: Any, kind: str) -> Any:
    """The Job's condition of this type if it holds. (The provider's is_job_failed and
    is_job_successful take any status string as true, "False" included.)"""
    conditions = (job.status.conditions if job.status else None) or []
    return next((c for c in conditions if c.type == kind and c.status == "True"), None)


def reason(state: Any) -> str:
    """ "Reason: message" of a Kubernetes condition or container state."""
    return f"{state.reason}: {state.message}" if state.message else str(state.reason)


def describe_pods(pods: list[Any], shown: int = 5) -> str:
    states = []
    for pod in pods[:shown]:
        status = pod.status
        waiting = [
            c.state.waiting
            for c in (status.container_statuses or [])
            if c.state is not None and c.state.waiting is not None
        ]
        unscheduled = [
            c for c in (status.conditions or []) if c.type == "PodScheduled" and c.status == "False"
        ]
        why = "; ".join(reason(r) for r in [*waiting, *unscheduled]) or "no reason given"
        states.append(f"{pod.metadata.name} {status.phase} ({why})")
    more = f" and {len(pods) - shown} more" if len(pods) > shown else ""
    return ", ".join(states) + more if states else "the Job has no pods"


def _event(status: str, message: str, progress: Progress) -> dict[str, Any]:
    return {"status": status, "message": message, "progress": dataclasses.asdict(progress)}


async def first_event(trigger: BaseTrigger) -> dict[str, Any]:
    """The payload of the trigger's first event, for a wait in the worker (not deferred)."""
    events = cast(AsyncGenerator[TriggerEvent, None], trigger.run())
    async with contextlib.aclosing(events):  # its `finally` closes the queue now
        async for event in events:
            return dict(event.payload)
    raise RuntimeError(f"{trigger!r} ended without an event")
