"""The one builder of plan -> map (mapped) -> shuffle -> reduce (mapped) -> commit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow.sdk import TaskGroup, XComArg

from airflow_mapreduce.airflow.backends import expand_worker_tasks
from airflow_mapreduce.airflow.operators import (
    MapReduceCommitOperator,
    MapReducePlanOperator,
    MapReduceShuffleOperator,
)
from airflow_mapreduce.airflow.queue_backend import add_queue_map_task
from airflow_mapreduce.job.models import JobSpec


@dataclass(frozen=True)
class MapReduceTasks:
    plan: MapReducePlanOperator
    commit: MapReduceCommitOperator


def add_mapreduce_tasks(
    job: JobSpec,
    *,
    job_dir: str | None = None,
    input_uri: str | None = None,
    output_uri: str | None = None,
    num_reducers: int | str | None = None,
    max_map_tasks: int | str | None = None,
) -> MapReduceTasks:
    """Add the job's tasks to the current DAG / task group.

    input_uri, output_uri, num_reducers and max_map_tasks default to the job's; they are
    templated, so
    ``{{ params.input }}`` lets a run's conf override them.
    """
    plan = MapReducePlanOperator(
        task_id="plan",
        job=job,
        input_uri=input_uri or job.input.uri,
        output_uri=output_uri or job.output,
        work_uri=job.work,
        num_reducers=job.reducers if num_reducers is None else num_reducers,
        max_map_tasks=job.max_map_tasks if max_map_tasks is None else max_map_tasks,
        job_dir=job_dir,
    )
    plan_uri = XComArg(plan, key="plan_uri")
    follower: dict[str, Any] = {"plan_uri": plan_uri, "aws_conn_id": job.storage.aws_conn_id}
    if job.uses_queue:  # work-queue mode: one task runs every map
        maps = add_queue_map_task(job, plan_uri, job_dir)
    else:
        maps = expand_worker_tasks(job, "map", plan.output, job_dir)
    commit = MapReduceCommitOperator(task_id="commit", **follower)
    if job.map_only:
        plan >> maps >> commit
    else:
        shuffle = MapReduceShuffleOperator(
            task_id="shuffle", max_reduce_tasks=job.max_reduce_tasks, **follower
        )
        reduces = expand_worker_tasks(job, "reduce", shuffle.output, job_dir)
        plan >> maps >> shuffle >> reduces >> commit
    return MapReduceTasks(plan=plan, commit=commit)


def mapreduce_task_group(
    job: JobSpec, *, group_id: str | None = None, job_dir: str | None = None
) -> TaskGroup:
    """A TaskGroup running `job`; use it inside a DAG like any task: ``a >> group >> b``."""
    with TaskGroup(group_id=group_id or job.dag_id) as group:
        add_mapreduce_tasks(job, job_dir=job_dir)
    return group
