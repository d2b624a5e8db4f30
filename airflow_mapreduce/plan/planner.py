"""The plan step: splits -> map task specs in storage; returns their URIs and the plan."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

from airflow_mapreduce.errors import PlanError, PlanRefusedError
from airflow_mapreduce.job.models import JobSpec
from airflow_mapreduce.plan.layout import OutputLayout, RunLayout
from airflow_mapreduce.plan.output_lease import IsRunning, process_is_running, take_lease
from airflow_mapreduce.plan.output_state import describe_unknown, survey_output
from airflow_mapreduce.plan.sampling import SampleRunner, sample_split_points
from airflow_mapreduce.plan.shipped_files import stage_shipped_files, survey_shipped_files
from airflow_mapreduce.plan.splits import group_splits, input_sizes, require_input, splits_of
from airflow_mapreduce.plan.tasks import JobRuntime, MapTaskSpec, RunPlan
from airflow_mapreduce.storage import FileSystems, UnsafeUriError, overlap_problem, resolve_uri


@dataclass(frozen=True)
class RunTarget:
    """The effective, rendered values of one run (YAML defaults overridden by conf).

    URIs are canonical (storage.resolve_uri) once plan_run has them: only absolute
    file:// URIs and object-store URIs get this far.
    """

    dag_id: str
    run_id: str
    input_uri: str
    output_uri: str
    work_uri: str | None
    num_reducers: int
    max_map_tasks: int


class PlannedRun(NamedTuple):
    plan_uri: str
    map_specs: list[str]  # URIs of the map tasks' specs
    plan: RunPlan  # as written to plan_uri


def plan_run(
    files: FileSystems,
    job: JobSpec,
    target: RunTarget,
    *,
    runner: Literal["airflow", "cli"] = "cli",
    is_running: IsRunning = process_is_running,
    run_sample: SampleRunner | None = None,
) -> PlannedRun:
    """Write plan.json and one spec per map task, after checking the output is this job's
    to write (output_state) and taking its lease (output_lease).

    `is_running` tells whether the run holding another lease on the output still runs;
    `run_sample` runs the sampler of partitioner.kind total_order (plan/sampling.py).
    """
    check_reducers(job, target.num_reducers)
    target = canonical_target(target)
    if problem := overlap_problem(target.input_uri, target.output_uri, target.work_uri):
        raise PlanRefusedError(problem)
    output = OutputLayout(target.output_uri)
    work_root = target.work_uri or output.default_work_root
    layout = RunLayout(work_root, target.dag_id, target.run_id)
    contents = survey_output(files, output, target.dag_id)
    if contents.unknown and not job.overwrite_output:
        raise PlanRefusedError(describe_unknown(output.root, contents.unknown))
    shipped = survey_shipped_files(files, job.files)  # before the lease: nothing to undo
    take_lease(files, output, target.dag_id, target.run_id, runner, is_running)

    sizes, skipped = input_sizes(files, target.input_uri)
    require_input(target.input_uri, list(sizes), skipped)
    splits = splits_of(sizes, job.input.split_size)
    if not splits:
        raise PlanError(f"input {target.input_uri} holds only empty objects; nothing to map")
    groups = group_splits(splits, target.max_map_tasks, sizes, job.input.split_size)
    runtime = JobRuntime.from_job(job, num_partitions=target.num_reducers)

    # A new attempt at this output: whatever is there is no longer a committed result
    # (_SUCCESS is this job's: survey_output would have refused another's).
    files.remove(output.success_uri)
    files.remove(layout.run_root, recursive=True)
    if shipped:
        staged = stage_shipped_files(files, shipped, layout)
        runtime = runtime.model_copy(update={"files": staged})
    if job.partitioner.kind == "total_order" and target.num_reducers > 1:
        runtime = sample_split_points(
            files, layout, runtime, splits, sizes, job.partitioner, run_sample
        )[0]

    spec_uris = []
    for index, group in enumerate(groups):
        spec = MapTaskSpec(
            dag_id=target.dag_id,
            run_id=target.run_id,
            task_index=index,
            job=runtime,
            splits=group,
            task_dir=layout.task_dir("map", index),
            manifest_uri=layout.manifest_uri("map", index),
            output_uri=output.map_part_uri(index) if job.map_only else None,
        )
        uri = layout.spec_uri("map", index)
        files.write_bytes(uri, spec.model_dump_json().encode())
        spec_uris.append(uri)

    plan = RunPlan(
        dag_id=target.dag_id,
        run_id=target.run_id,
        input_uri=target.input_uri,
        output_uri=target.output_uri,
        work_uri=work_root,
        keep_intermediate=job.keep_intermediate,
        overwrite_output=job.overwrite_output,
        num_map_tasks=len(groups),
        num_splits=len(splits),
        input_bytes=sum(s.length if s.length is not None else sizes[s.uri] for s in splits),
        skipped_inputs=skipped,
        job=runtime,
    )
    files.write_bytes(layout.plan_uri, plan.model_dump_json().encode())
    return PlannedRun(layout.plan_uri, spec_uris, plan)


def canonical_target(target: RunTarget) -> RunTarget:
    """The target with canonical URIs; a relative path has no folder here and is refused."""
    try:
        return replace(
            target,
            input_uri=resolve_uri(target.input_uri, None),
            output_uri=resolve_uri(target.output_uri, None),
            work_uri=None if target.work_uri is None else resolve_uri(target.work_uri, None),
        )
    except UnsafeUriError as exc:
        raise PlanRefusedError(str(exc)) from None


def plan_summary(plan: RunPlan) -> list[str]:
    """What the plan step reports (task log, `airflow-mapreduce run`)."""
    lines = [
        f"Planned {plan.num_splits} split(s), {plan.input_bytes} bytes, into "
        f"{plan.num_map_tasks} map task(s) and {plan.job.num_partitions} partition(s): "
        f"{plan.input_uri} -> {plan.output_uri}"
    ]
    if plan.skipped_inputs:
        lines.append(
            f"Skipped {len(plan.skipped_inputs)} hidden object(s) under the input (names "
            f"starting with '_' or '.'): {', '.join(plan.skipped_inputs[:20])}"
        )
    if plan.job.files:
        names = ", ".join(staged.name for staged in plan.job.files)
        lines.append(f"Staged {len(plan.job.files)} shipped file(s) for every task: {names}")
    if plan.job.split_points is not None:
        lines.append(
            f"Total order: {len(plan.job.split_points)} split point(s) from the sampled keys "
            f"cut the keys into {plan.job.num_partitions} ordered partition(s)"
        )
    return lines


def check_reducers(job: JobSpec, num_reducers: int) -> None:
    """A run may change how many reducers, not whether the job has a reduce phase."""
    if job.map_only and num_reducers != 0:
        raise PlanRefusedError(
            f"reducers={num_reducers} requested, but the job is map-only (no reducer); "
            "use reducers: 0"
        )
    if not job.map_only and num_reducers < 1:
        raise PlanRefusedError(
            f"reducers={num_reducers} requested, but the job has a reducer; "
            "expected an integer >= 1"
        )
