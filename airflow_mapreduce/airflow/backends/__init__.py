"""Execution backends: how a job's map and reduce tasks run, one object per ``backend:``
of the YAML, chosen once by `backend_for`.

``local``           mapped LocalWorkerOperator tasks: worker subprocesses (local.py).
``kubernetes``      mapped KubernetesPodOperator pods (kubernetes.py).
``kubernetes_job``  map tasks pulled from a work queue by an Indexed Job's pods; reduce
                    pods as for ``kubernetes`` (work_queue.py).
``local_pool``      map tasks pulled from a work queue by local worker processes; reduce
                    tasks as for ``local`` (work_queue.py).

Every backend runs the same worker command on the same task specs.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from airflow_mapreduce.airflow.backends.base import Backend, task_arguments
from airflow_mapreduce.airflow.backends.kubernetes import KubernetesBackend, pod_arguments
from airflow_mapreduce.airflow.backends.local import LocalBackend
from airflow_mapreduce.airflow.backends.work_queue import WorkQueueBackend
from airflow_mapreduce.errors import JobSpecError

if TYPE_CHECKING:
    from airflow_mapreduce.job.models import JobSpec

# pod_arguments and task_arguments: what the work-queue map operators are built from too.
__all__ = ["BACKENDS", "Backend", "backend_for", "pod_arguments", "task_arguments"]

_LOCAL = LocalBackend()
_KUBERNETES = KubernetesBackend()
BACKENDS: Mapping[str, Backend] = MappingProxyType(
    {
        backend.name: backend
        for backend in (
            _LOCAL,
            _KUBERNETES,
            WorkQueueBackend("kubernetes_job", reduces=_KUBERNETES),
            WorkQueueBackend("local_pool", reduces=_LOCAL),
        )
    }
)


def backend_for(job: JobSpec) -> Backend:
    """The backend object of the job's ``backend:``."""
    try:
        return BACKENDS[job.backend]
    except KeyError:
        raise JobSpecError(
            "JobSpec",
            [
                f"backend: expected one of {', '.join(BACKENDS)}, found {job.backend!r}; "
                "set backend to one of them"
            ],
        ) from None
