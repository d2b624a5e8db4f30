"""The one builder of plan -> map (mapped) -> shuffle -> reduce (mapped) -> commit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow.sdk import XComArg

from airflow_mapreduce.airflow.backends import backend_for
from airflow_mapreduce.airflow.operators import (
    MapReduceCommitOperator,
    MapReducePlanOperator,
    MapReduceShuffleOperator,
)
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
    job_name: str | None = None,
) -> MapReduceTasks:
    """Add the job's tasks to the current DAG / task group (MapReduceOperator's body).

    input_uri, output_uri, num_reducers and max_map_tasks default to the job's; they are
    templated, so ``{{ params.input }}`` lets a run's conf override them. `job_name` tells
    two jobs of one DAG apart (their work folders and output leases).
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
        job_name=job_name,
    )
    plan_uri = XComArg(plan, key="plan_uri")
    follower: dict[str, Any] = {"plan_uri": plan_uri, "aws_conn_id": job.storage.aws_conn_id}
    backend = backend_for(job)
    dag_job_name = f"{plan.dag_id}.{job_name}" if job_name else plan.dag_id  # names pods
    maps = backend.map_tasks(
        job, dag_job_name, plan_uri=plan_uri, spec_uris=plan.output, job_dir=job_dir
    )
    commit = MapReduceCommitOperator(task_id="commit", **follower)
    if job.map_only:
        plan >> maps >> commit
    else:
        shuffle = MapReduceShuffleOperator(
            task_id="shuffle", max_reduce_tasks=job.max_reduce_tasks, **follower
        )
        reduces = backend.reduce_tasks(job, dag_job_name, spec_uris=shuffle.output, job_dir=job_dir)
        plan >> maps >> shuffle >> reduces >> commit
    return MapReduceTasks(plan=plan, commit=commit)
