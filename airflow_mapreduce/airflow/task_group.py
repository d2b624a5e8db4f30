"""The one builder of plan -> map (mapped) -> shuffle -> reduce (mapped) (per step) -> commit."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk import TaskGroup, XComArg

from airflow_mapreduce.airflow.backends import backend_for
from airflow_mapreduce.airflow.operators import (
    MapReduceCommitOperator,
    MapReducePlanOperator,
    MapReduceShuffleOperator,
)
from airflow_mapreduce.job.models import JobSpec

if TYPE_CHECKING:
    from airflow.sdk.types import Operator


@dataclass(frozen=True)
class MapReduceTasks:
    plan: MapReducePlanOperator
    commit: MapReduceCommitOperator


def add_mapreduce_tasks(
    job: JobSpec,
    *,
    job_dir: str | None = None,
    input_uris: list[str] | None = None,
    output_uri: str | None = None,
    num_reducers: int | str | None = None,
    max_map_tasks: int | str | None = None,
    job_name: str | None = None,
) -> MapReduceTasks:
    """Add the job's tasks to the current DAG / task group (MapReduceOperator's body).

    input_uris (one per input), output_uri, num_reducers and max_map_tasks default to the
    job's; they are templated, so ``{{ params.input }}`` lets a run's conf override them.
    `job_name` tells two jobs of one DAG apart (their work folders and output leases).
    A multi-step job gets a task group per step (step_1, step_2, ...), each with its plan,
    map, shuffle and reduce tasks; the last one also holds the one commit.
    """
    pipeline = job.pipeline()
    backend = backend_for(job)
    first: MapReducePlanOperator | None = None
    previous: tuple[Operator, XComArg] | None = None  # last task and plan of the step before
    commit: MapReduceCommitOperator | None = None
    for step, step_job in enumerate(pipeline):
        final = step == len(pipeline) - 1
        with TaskGroup(f"step_{step + 1}") if len(pipeline) > 1 else nullcontext():
            plan = MapReducePlanOperator(
                task_id="plan",
                job=job,
                input_uris=input_uris or [entry.uri for entry in job.all_inputs],
                output_uri=output_uri or job.output,
                work_uri=job.work,
                num_reducers=(
                    (job.output_reducers if num_reducers is None else num_reducers)
                    if final
                    else step_job.reducers
                ),
                max_map_tasks=job.max_map_tasks if max_map_tasks is None else max_map_tasks,
                job_dir=job_dir,
                job_name=job_name,
                step=step,
                previous_plan_uri=None if previous is None else previous[1],
            )
            plan_uri = XComArg(plan, key="plan_uri")
            follower: dict[str, Any] = {
                "plan_uri": plan_uri,
                "aws_conn_id": job.storage.aws_conn_id,
            }
            dag_job_name = f"{plan.dag_id}.{job_name}" if job_name else plan.dag_id  # pods
            maps = backend.map_tasks(
                step_job, dag_job_name, plan_uri=plan_uri, spec_uris=plan.output, job_dir=job_dir
            )
            last: Operator = maps
            plan >> maps
            if not step_job.map_only:
                shuffle = MapReduceShuffleOperator(
                    task_id="shuffle", max_reduce_tasks=step_job.max_reduce_tasks, **follower
                )
                reduces = backend.reduce_tasks(
                    step_job, dag_job_name, spec_uris=shuffle.output, job_dir=job_dir
                )
                maps >> shuffle >> reduces
                last = reduces
            if previous is not None:
                previous[0] >> plan
            if final:
                commit = MapReduceCommitOperator(task_id="commit", **follower)
                last >> commit
        first = first or plan
        previous = (last, plan_uri)
    assert first is not None and commit is not None, "a job has at least one step"
    return MapReduceTasks(plan=first, commit=commit)
