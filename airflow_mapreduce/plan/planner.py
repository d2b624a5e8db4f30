"""The plan step: splits -> map task specs in storage; returns their URIs and the plan."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

from airflow_mapreduce.errors import CommitError, PlanError, PlanRefusedError
from airflow_mapreduce.job.models import JobSpec
from airflow_mapreduce.plan.layout import OutputLayout, RunLayout
from airflow_mapreduce.plan.manifests import read_plan, step_output_manifests
from airflow_mapreduce.plan.output_lease import (
    IsRunning,
    check_lease,
    process_is_running,
    take_lease,
)
from airflow_mapreduce.plan.output_state import describe_unknown, survey_output
from airflow_mapreduce.plan.sampling import SampleRunner, sample_split_points
from airflow_mapreduce.plan.shipped_files import (
    ShippedSource,
    stage_shipped_files,
    survey_shipped_files,
)
from airflow_mapreduce.plan.splits import (
    group_splits,
    input_sizes,
    require_input,
    split_weight,
    splits_of,
)
from airflow_mapreduce.plan.tasks import InputSplit, JobRuntime, MapTaskSpec, RunPlan
from airflow_mapreduce.storage import FileSystems, UnsafeUriError, overlap_problem, resolve_uri


@dataclass(frozen=True)
class RunTarget:
    """The effective, rendered values of one run (YAML defaults overridden by conf).

    URIs are canonical (storage.resolve_uri) once plan_run has them: only absolute
    file:// URIs and object-store URIs get this far. `input_uris` holds one URI per input
    of the job (input:, or each entry of inputs:); `num_reducers` is the output's (the last
    step's).
    """

    dag_id: str
    run_id: str
    input_uris: tuple[str, ...]
    output_uri: str
    work_uri: str | None
    num_reducers: int
    max_map_tasks: int


class PlannedRun(NamedTuple):
    plan_uri: str
    map_specs: list[str]  # URIs of the map tasks' specs
    plan: RunPlan  # as written to plan_uri


class _StepInput(NamedTuple):
    splits: list[InputSplit]
    groups: list[list[InputSplit]]  # one map task each: each of one input (one mapper)
    sizes: dict[str, int]
    skipped: list[str]


def plan_run(
    files: FileSystems,
    job: JobSpec,
    target: RunTarget,
    *,
    step: int = 0,
    previous_plan_uri: str | None = None,
    runner: Literal["airflow", "cli"] = "cli",
    is_running: IsRunning = process_is_running,
    run_sample: SampleRunner | None = None,
) -> PlannedRun:
    """Write the plan of one step of the job (step 0 of a one-step job) and one spec per map
    task. The first step checks the output is this job's to write (output_state) and takes
    its lease (output_lease); a later step checks the lease is still this run's and reads
    the output of the step before (`previous_plan_uri`) from the work area.

    `is_running` tells whether the run holding another lease on the output still runs;
    `run_sample` runs the sampler of partitioner.kind total_order (plan/sampling.py).
    """
    pipeline = job.pipeline()
    step_job = pipeline[step]
    final = step == len(pipeline) - 1
    num_partitions = target.num_reducers if final else step_job.reducers
    check_reducers(step_job, num_partitions)
    target = canonical_target(target)
    if len(target.input_uris) != len(job.all_inputs):
        raise PlanRefusedError(
            f"the job reads {len(job.all_inputs)} input(s), the run gives "
            f"{len(target.input_uris)}; give one URI per input"
        )
    for input_uri in target.input_uris:
        if problem := overlap_problem(input_uri, target.output_uri, target.work_uri):
            raise PlanRefusedError(problem)
    output = OutputLayout(target.output_uri)
    work_root = target.work_uri or output.default_work_root
    layout = RunLayout(work_root, target.dag_id, target.run_id, step)
    runtime = _step_runtime(job, step_job, step, final, num_partitions)
    shipped: list[ShippedSource] = []
    if step == 0:
        shipped = _claim_output(files, job, target, output, runner, is_running)
        planned = _job_inputs(files, step_job, target)
        # A new attempt at this output: whatever is there is no longer a committed result
        # (_SUCCESS is this job's: survey_output would have refused another's).
        files.remove(output.success_uri)
        files.remove(layout.run_root, recursive=True)
    else:
        try:  # the lease step 1 took: another run may have taken the output over since
            check_lease(files, output, target.dag_id, target.run_id)
        except CommitError as exc:  # the same again on a retry: refused, not retried
            raise PlanRefusedError(str(exc)) from None
        previous = _previous_plan(files, target, step, previous_plan_uri)
        planned = _previous_output(files, previous, step_job, target.max_map_tasks)
        runtime = runtime.model_copy(update={"files": previous.job.files})  # staged once
        files.remove(layout.step_root, recursive=True)  # a rerun: earlier steps' output stays
    if shipped:
        staged = stage_shipped_files(files, shipped, layout)
        runtime = runtime.model_copy(update={"files": staged})
    if step_job.partitioner.kind == "total_order" and num_partitions > 1:
        runtime = sample_split_points(
            files, layout, runtime, planned.splits, planned.sizes, step_job.partitioner,
            run_sample,
        )[0]  # fmt: skip

    spec_uris = []
    for index, group in enumerate(planned.groups):
        spec = MapTaskSpec(
            dag_id=target.dag_id,
            run_id=target.run_id,
            task_index=index,
            job=runtime,
            splits=group,
            task_dir=layout.task_dir("map", index),
            manifest_uri=layout.manifest_uri("map", index),
            output_uri=output.map_part_uri(index) if step_job.map_only else None,
        )
        uri = layout.spec_uri("map", index)
        files.write_bytes(uri, spec.model_dump_json().encode())
        spec_uris.append(uri)

    sizes = planned.sizes
    plan = RunPlan(
        dag_id=target.dag_id,
        run_id=target.run_id,
        input_uris=list(target.input_uris),
        output_uri=target.output_uri,
        work_uri=work_root,
        keep_intermediate=job.keep_intermediate,
        overwrite_output=job.overwrite_output,
        num_map_tasks=len(planned.groups),
        num_splits=len(planned.splits),
        input_bytes=sum(split_weight(s, sizes) for s in planned.splits),
        skipped_inputs=planned.skipped,
        job=runtime,
        step=step,
        num_steps=len(pipeline),
        previous_plan_uri=previous_plan_uri if step > 0 else None,
    )
    files.write_bytes(layout.plan_uri, plan.model_dump_json().encode())
    return PlannedRun(layout.plan_uri, spec_uris, plan)


def _claim_output(
    files: FileSystems,
    job: JobSpec,
    target: RunTarget,
    output: OutputLayout,
    runner: Literal["airflow", "cli"],
    is_running: IsRunning,
) -> list[ShippedSource]:
    """Check the output is this job's to write and take its lease; the shipped files."""
    contents = survey_output(files, output, target.dag_id)
    if contents.unknown and not job.overwrite_output:
        raise PlanRefusedError(describe_unknown(output.root, contents.unknown))
    shipped = survey_shipped_files(files, job.files)  # before the lease: nothing to undo
    take_lease(files, output, target.dag_id, target.run_id, runner, is_running)
    return shipped


def _previous_plan(
    files: FileSystems, target: RunTarget, step: int, previous_plan_uri: str | None
) -> RunPlan:
    if previous_plan_uri is None:
        raise PlanError(f"step {step + 1} needs the plan of step {step}; none was given")
    previous = read_plan(files, previous_plan_uri)
    expected = (target.dag_id, target.run_id, step - 1)
    if (previous.dag_id, previous.run_id, previous.step) != expected:
        raise PlanError(
            f"{previous_plan_uri} is the plan of step {previous.step + 1} of run "
            f"{previous.dag_id}/{previous.run_id}; step {step + 1} of "
            f"{target.dag_id}/{target.run_id} reads step {step}'s"
        )
    return previous


def _step_runtime(
    job: JobSpec, step_job: JobSpec, step: int, final: bool, num_partitions: int
) -> JobRuntime:
    """A step's runtime. Between steps, records travel as the next step reads them: JSON
    lines of {key, value} when every step is Python (types kept, as mrjob's protocols),
    else key<TAB>value text lines (as chained Hadoop Streaming jobs); never compressed."""
    runtime = JobRuntime.from_job(step_job, num_partitions, only_callables=job.only_callables)
    handover = "jsonlines" if job.only_callables else "text"
    formats = runtime.dataplane.formats
    if not final:
        formats = formats.model_copy(update={"output": handover, "compression": None})
    if step > 0:
        formats = formats.model_copy(update={"input": handover})
    mapper = runtime.mapper
    return runtime.model_copy(
        update={
            "dataplane": runtime.dataplane.model_copy(update={"formats": formats}),
            "input_pairs": step > 0 and mapper is not None and mapper.python is not None,
        }
    )


def _job_inputs(files: FileSystems, job: JobSpec, target: RunTarget) -> _StepInput:
    """The first step's splits: each input listed and cut with its own split size; map
    tasks shared out across inputs by bytes (at least one each), each of one input."""
    inputs = job.all_inputs
    if len(inputs) > target.max_map_tasks:
        raise PlanRefusedError(
            f"the job has {len(inputs)} inputs but at most {target.max_map_tasks} map "
            "task(s) (parallelism / max_map_tasks): each input needs one; raise it"
        )
    listed = []
    for index, (spec, uri) in enumerate(zip(inputs, target.input_uris, strict=True)):
        sizes, skipped = input_sizes(files, uri)
        require_input(uri, list(sizes), skipped)
        splits = splits_of(sizes, spec.split_size, index)
        listed.append((spec, sizes, skipped, splits))
    all_splits = [split for *_, splits in listed for split in splits]
    all_sizes = {uri: size for _, sizes, _, _ in listed for uri, size in sizes.items()}
    if not all_splits:
        names = ", ".join(target.input_uris)
        raise PlanError(f"input {names} holds only empty objects; nothing to map")
    total = sum(split_weight(s, all_sizes) for s in all_splits)
    groups: list[list[InputSplit]] = []
    spare = target.max_map_tasks - len(listed)  # beyond the one task each input has
    for spec, sizes, _, splits in listed:
        if not splits:
            continue
        weight = sum(split_weight(s, sizes) for s in splits)
        share = 1 + (spare * weight // total if total else 0)
        groups += group_splits(splits, share, sizes, spec.split_size)
    skipped = [uri for _, _, found, _ in listed for uri in found]
    return _StepInput(all_splits, groups, all_sizes, skipped)


def _previous_output(
    files: FileSystems, previous: RunPlan, job: JobSpec, max_map_tasks: int
) -> _StepInput:
    """A later step's splits: the parts the step before committed in the work area."""
    _, manifests = step_output_manifests(files, previous, PlanError)
    sizes = {part.uri: part.bytes for manifest in manifests for part in manifest.files}
    split_size = job.all_inputs[0].split_size
    splits = splits_of(sizes, split_size)
    if not splits:  # the previous step emitted nothing: one empty task keeps the run whole
        groups: list[list[InputSplit]] = [[]]
    else:
        groups = group_splits(splits, max_map_tasks, sizes, split_size)
    return _StepInput(splits, groups, sizes, [])


def canonical_target(target: RunTarget) -> RunTarget:
    """The target with canonical URIs; a relative path has no folder here and is refused."""
    try:
        return replace(
            target,
            input_uris=tuple(resolve_uri(uri, None) for uri in target.input_uris),
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
        f"{', '.join(plan.input_uris)} -> {plan.output_uri}"
    ]
    if plan.num_steps > 1:
        source = "the job's input" if plan.step == 0 else f"the output of step {plan.step}"
        goal = "the output" if plan.is_final_step else "the work area"
        lines[0] = (
            f"Step {plan.step + 1} of {plan.num_steps}, from {source} to {goal}: " + (lines[0])
        )
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
