"""Dispatch a task spec to the map or reduce runner."""

from __future__ import annotations

from airflow_mapreduce.plan.manifests import read_task_spec
from airflow_mapreduce.plan.tasks import MapTaskSpec, TaskManifest
from airflow_mapreduce.storage import FileSystems
from airflow_mapreduce.worker import memory
from airflow_mapreduce.worker.map_task import run_map_task
from airflow_mapreduce.worker.reduce_task import run_reduce_task
from airflow_mapreduce.worker.shipped_files import task_working_folder


def run_task(spec_uri: str, files: FileSystems | None = None) -> TaskManifest:
    files = files or FileSystems()
    spec = read_task_spec(files, spec_uri)
    memory.start_task()
    # The attempt runs in a folder with the job's shipped files, if it has any.
    with memory.fewer_collections(), task_working_folder(files, spec.job.files):
        if isinstance(spec, MapTaskSpec):
            return run_map_task(files, spec)
        return run_reduce_task(files, spec)


def task_summary(manifest: TaskManifest) -> str:
    """The worker's one-line report of a finished task (in the task log)."""
    text = (
        f"{manifest.kind}[{manifest.task_index}] attempt {manifest.attempt}: "
        f"{manifest.input_records} records in, {manifest.output_records} records out, "
        f"{len(manifest.files)} file(s)"
    )
    if manifest.peak_memory is not None:
        text += f", peak memory {manifest.peak_memory.describe()}"
    return text
