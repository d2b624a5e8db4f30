"""``kubernetes_job`` and ``local_pool``: the map phase is ONE task whose workers pull the
map tasks from a work queue (airflow/queue_backend.py); the reduce phase, a few tasks
started once every map is committed, stays mapped: pods for ``kubernetes_job``, local
workers for ``local_pool``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mapreduce.airflow.backends.base import Backend, MappedTasksBackend

if TYPE_CHECKING:
    from airflow.sdk import XComArg
    from airflow.sdk.types import Operator

    from airflow_mapreduce.job.models import JobSpec


class WorkQueueBackend(Backend):
    pulls_map_tasks = True

    def __init__(self, name: str, reduces: MappedTasksBackend) -> None:
        self.name = name
        self.reduces = reduces

    def map_tasks(
        self,
        job: JobSpec,
        job_name: str,
        *,
        plan_uri: XComArg,
        spec_uris: XComArg,
        job_dir: str | None,
    ) -> Operator:
        from airflow_mapreduce.airflow.backends.kubernetes import KubernetesBackend
        from airflow_mapreduce.airflow.queue_backend import add_queue_map_task

        return add_queue_map_task(
            job,
            plan_uri,
            job_dir,
            job_name=job_name,
            indexed_job=isinstance(self.reduces, KubernetesBackend),  # pods pull the queue
        )

    def reduce_tasks(
        self, job: JobSpec, job_name: str, *, spec_uris: XComArg, job_dir: str | None
    ) -> Operator:
        return self.reduces.reduce_tasks(job, job_name, spec_uris=spec_uris, job_dir=job_dir)
