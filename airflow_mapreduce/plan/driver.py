"""The one driver of a run: plan -> map -> shuffle (unless map-only) -> reduce, once per
step of the job (each step's plan reads the step before's output), then one commit.

Who runs a phase's tasks is the caller's part, `run_tasks(phase, spec_uris)`, which returns
once every task of the phase is done and raises if one failed: ``airflow-mapreduce run``
starts a worker subprocess per task (local_run.py), the tests run them in their own process
or through a work queue. Under Airflow each step is a task of the DAG
(airflow/task_group.py) calling the same plan_run, shuffle_run and commit_run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from airflow_mapreduce.job.models import JobSpec
from airflow_mapreduce.plan.commit import OutputManifest, commit_run
from airflow_mapreduce.plan.planner import RunTarget, plan_run
from airflow_mapreduce.plan.sampling import SampleRunner
from airflow_mapreduce.plan.shuffle import shuffle_run
from airflow_mapreduce.plan.tasks import RunPlan
from airflow_mapreduce.storage import FileSystems

Phase = Literal["map", "reduce"]
RunTasks = Callable[[Phase, list[str]], None]


def run_phases(
    files: FileSystems,
    job: JobSpec,
    target: RunTarget,
    run_tasks: RunTasks,
    *,
    max_reduce_tasks: int | None = None,
    on_plan: Callable[[RunPlan], None] | None = None,
    run_sample: SampleRunner | None = None,
) -> OutputManifest:
    """Run the job on `target` to its commit; the committed output's manifest.

    `max_reduce_tasks` defaults to the job's; `on_plan` sees the plan before any map runs;
    `run_sample` runs a total-order job's sampler (default: in this process).
    """
    plan_uri: str | None = None
    for step, step_job in enumerate(job.pipeline()):
        plan_uri, map_specs, plan = plan_run(
            files, job, target, step=step, previous_plan_uri=plan_uri, run_sample=run_sample
        )
        if on_plan is not None:
            on_plan(plan)
        run_tasks("map", map_specs)
        if not step_job.map_only:
            limit = step_job.max_reduce_tasks if max_reduce_tasks is None else max_reduce_tasks
            run_tasks("reduce", shuffle_run(files, plan_uri, limit))
    assert plan_uri is not None, "a job has at least one step"
    return commit_run(files, plan_uri)
