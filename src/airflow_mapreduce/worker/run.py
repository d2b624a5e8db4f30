"""Dispatch a task spec to the map or reduce runner."""

from __future__ import annotations

from pydantic import TypeAdapter, ValidationError

from airflow_mapreduce.errors import TaskFailedError
from airflow_mapreduce.plan.tasks import MapTaskSpec, TaskManifest, TaskSpec
from airflow_mapreduce.storage import FileSystems
from airflow_mapreduce.worker.map_task import run_map_task
from airflow_mapreduce.worker.reduce_task import run_reduce_task

_TASK_SPEC: TypeAdapter[TaskSpec] = TypeAdapter(TaskSpec)


def run_task(spec_uri: str, files: FileSystems | None = None) -> TaskManifest:
    files = files or FileSystems()
    try:
        spec = _TASK_SPEC.validate_json(files.read_bytes(spec_uri))
    except ValidationError as exc:
        raise TaskFailedError(
            f"task spec {spec_uri} is malformed: {exc}; it was written by a different "
            "airflow-mapreduce version? Use the same version in Airflow and the worker image."
        ) from None
    if isinstance(spec, MapTaskSpec):
        return run_map_task(files, spec)
    return run_reduce_task(files, spec)
