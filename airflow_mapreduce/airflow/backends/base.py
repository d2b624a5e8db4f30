"""What every backend is: a builder of a job's map phase and reduce phase in a DAG."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import XComArg
    from airflow.sdk.types import Operator

    from airflow_mapreduce.job.models import JobSpec


class Backend(ABC):
    """How one backend of the YAML (`backend:`) runs a job's map and reduce tasks.

    `job_name` names the job where pods need a name and labels: the DAG's id, or
    ``<dag_id>.<group_id>`` for a job inside a task group.
    """

    name: str  # as the YAML spells it
    # Map tasks pulled from a work queue by ONE Airflow task, not mapped Airflow tasks: the
    # plan returns no spec URIs for them (the queue task reads the plan) and
    # Airflow's max_map_length does not cap their number.
    pulls_map_tasks: bool = False

    @abstractmethod
    def map_tasks(
        self,
        job: JobSpec,
        job_name: str,
        *,
        plan_uri: XComArg,
        spec_uris: XComArg,
        job_dir: str | None,
    ) -> Operator:
        """The map phase: one task per spec in `spec_uris` (the plan's return value), or
        one task that runs them all from the plan at `plan_uri`."""

    @abstractmethod
    def reduce_tasks(
        self, job: JobSpec, job_name: str, *, spec_uris: XComArg, job_dir: str | None
    ) -> Operator:
        """The reduce phase: one task per spec in `spec_uris` (the shuffle's return value)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} backend {self.name!r}>"


class MappedTasksBackend(Backend):
    """Map and reduce phases alike: one mapped Airflow task per task spec."""

    def map_tasks(
        self,
        job: JobSpec,
        job_name: str,
        *,
        plan_uri: XComArg,
        spec_uris: XComArg,
        job_dir: str | None,
    ) -> Operator:
        return self.worker_tasks(job, job_name, "map", spec_uris, job_dir)

    def reduce_tasks(
        self, job: JobSpec, job_name: str, *, spec_uris: XComArg, job_dir: str | None
    ) -> Operator:
        return self.worker_tasks(job, job_name, "reduce", spec_uris, job_dir)

    @abstractmethod
    def worker_tasks(
        self, job: JobSpec, job_name: str, task_id: str, spec_uris: XComArg, job_dir: str | None
    ) -> Operator:
        """One mapped task `task_id` ("map"/"reduce") expanded over `spec_uris`."""


def task_arguments(job: JobSpec, task_id: str) -> dict[str, Any]:
    """What every map/reduce task of the job gets: retries, pool and priority."""
    common: dict[str, Any] = {
        "task_id": task_id,
        "retries": job.retries,
        "retry_delay": timedelta(seconds=job.retry_delay_seconds),
        "retry_exponential_backoff": True,
        "priority_weight": job.priority_weight,
    }
    if job.pool is not None:  # else Airflow's default pool
        common["pool"] = job.pool
    return common


def worker_task_arguments(job: JobSpec, task_id: str) -> dict[str, Any]:
    """task_arguments plus the limits of a mapped worker task: parallelism and timeout."""
    common = task_arguments(job, task_id)
    if job.max_parallel_tasks is not None:
        common["max_active_tis_per_dagrun"] = job.max_parallel_tasks
    if job.task_timeout_seconds is not None:
        common["execution_timeout"] = timedelta(seconds=job.task_timeout_seconds)
    return common
