"""``local``: each task runs the worker command as a subprocess of the Airflow worker
(LocalWorkerOperator), on the same task specs as a pod would."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mapreduce.airflow.backends.base import MappedTasksBackend, worker_task_arguments
from airflow_mapreduce.airflow.labels import LOCAL_MAP_INDEX_TEMPLATE
from airflow_mapreduce.airflow.operators import LocalWorkerOperator

if TYPE_CHECKING:
    from airflow.sdk import XComArg
    from airflow.sdk.types import Operator

    from airflow_mapreduce.job.models import JobSpec


class LocalBackend(MappedTasksBackend):
    name = "local"

    def worker_tasks(
        self, job: JobSpec, job_name: str, task_id: str, spec_uris: XComArg, job_dir: str | None
    ) -> Operator:
        return LocalWorkerOperator.partial(
            **worker_task_arguments(job, task_id),
            aws_conn_id=job.storage.aws_conn_id,
            job_dir=job_dir,
            map_index_template=LOCAL_MAP_INDEX_TEMPLATE,
        ).expand(task_spec_uri=spec_uris)
