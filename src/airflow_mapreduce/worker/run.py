"""Dispatch a task spec to the map or reduce runner."""

from __future__ import annotations

from airflow_mapreduce.plan.manifests import read_task_spec
from airflow_mapreduce.plan.tasks import MapTaskSpec, TaskManifest
from airflow_mapreduce.storage import FileSystems
from airflow_mapreduce.worker.map_task import run_map_task
from airflow_mapreduce.worker.reduce_task import run_reduce_task


def run_task(spec_uri: str, files: FileSystems | None = None) -> TaskManifest:
    files = files or FileSystems()
    spec = read_task_spec(files, spec_uri)
    if isinstance(spec, MapTaskSpec):
        return run_map_task(files, spec)
    return run_reduce_task(files, spec)
