"""What the MapReduce view shows of one DAG run: each job's phases, tasks, counters, skew,
bad records and output, from Airflow's task instances and the run's manifests in storage.

A job is found by its plan task's XCom (the plan's URI and the storage connection's id).
While the run is going, the plan and the task manifests in the work area are read; once
committed, the output's _manifest.json and _job_history.json (the work area is gone by
then). Nothing secret is returned: URIs are credential-free by construction (resolve_uri
refuses credentials), connection ids are names, and storage errors are reported by kind.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from pydantic import BaseModel, Field

from airflow_mapreduce.airflow.connections import airflow_filesystems
from airflow_mapreduce.airflow.links import manifest_link
from airflow_mapreduce.airflow.operators import STORAGE_CONN_XCOM_KEY
from airflow_mapreduce.plan.history import (
    JobHistory,
    TaskSummary,
    build_history,
    phase_totals,
    read_job_history,
)
from airflow_mapreduce.plan.layout import OutputLayout, RunLayout
from airflow_mapreduce.plan.manifests import read_plan
from airflow_mapreduce.plan.output_state import OutputManifest
from airflow_mapreduce.plan.tasks import Counters, PartFile, ShufflePlan, TaskManifest, add_counters
from airflow_mapreduce.storage import FileSystems, MissingObjectError
from airflow_mapreduce.version_compat import TaskInstanceRow, run_task_instances, run_xcoms

PLAN_XCOM_KEY = "plan_uri"
MAP_TASK_IDS = ("map", "run_map_queue")  # mapped tasks, or the work-queue map phase
STEP_TASK_IDS = ("plan", *MAP_TASK_IDS, "shuffle", "reduce", "commit")
TASK_ROWS = 2000  # per phase; a bigger run shows the first ones and says how many more
READERS = 16  # manifests read at once
PREVIEW_BYTES = 64 * 1024
DONE_STATES = ("success", "skipped")
FAILED_STATES = ("failed", "upstream_failed")
RUNNING_STATES = ("running", "deferred", "restarting")


class TaskRow(BaseModel):
    index: int
    label: str
    state: str  # Airflow's state of the task instance, or "success" once its manifest exists
    try_number: int | None = None
    attempt: str | None = None  # the worker attempt whose output counts
    records_in: int | None = None
    records_out: int | None = None
    bytes_in: int | None = None
    bytes_out: int | None = None
    seconds: float | None = None
    peak_memory_bytes: int | None = None
    bad_records: int = 0


class PhaseView(BaseModel):
    name: Literal["map", "reduce"]
    state: str  # of its Airflow task(s): none, queued, running, success, failed
    total: int | None  # None until known (the reduce count, before the shuffle)
    done: int
    running: int
    failed: int
    retrying: int
    records_in: int
    records_out: int
    bytes_in: int
    bytes_out: int
    bad_records: int
    seconds: float | None
    peak_memory_bytes: int
    tasks: list[TaskRow]
    more_tasks: int = 0


class StepView(BaseModel):
    name: str  # plan, map, shuffle, reduce, commit
    state: str


class BadRecordsView(BaseModel):
    task: int
    count: int
    uri: str


class OutputView(BaseModel):
    uri: str
    committed: bool
    manifest_uri: str | None = None
    manifest_link: str | None = None
    records: int | None = None
    bytes: int | None = None
    parts: list[PartFile] = Field(default_factory=list)


class JobView(BaseModel):
    name: str  # the task group's id, or the DAG's for a YAML job
    prefix: str  # of its task ids ("" or "<group>.")
    state: str
    input_uri: str | None = None
    input_bytes: int | None = None
    steps: list[StepView]
    phases: list[PhaseView]
    counters: Counters = Field(default_factory=dict)
    partitions: list[PartFile] = Field(default_factory=list)
    bad_records: list[BadRecordsView] = Field(default_factory=list)
    output: OutputView | None = None
    problems: list[str] = Field(default_factory=list)


class RunView(BaseModel):
    dag_id: str
    run_id: str
    jobs: list[JobView]
    finished: bool  # every job committed or failed: the page stops refreshing
    refreshed_at: float


def run_view(dag_id: str, run_id: str) -> RunView:
    plans = {
        task_id.removesuffix("plan"): uri
        for task_id, uri in run_xcoms(dag_id, run_id, PLAN_XCOM_KEY).items()
        if task_id.endswith("plan") and isinstance(uri, str)
    }
    jobs = [
        _job_view(dag_id, run_id, prefix, plan_uri, _next_step(prefix) in plans)
        for prefix, plan_uri in sorted(plans.items(), key=lambda item: _step_order(item[0]))
    ]
    finished = all(job.state in ("success", "failed") for job in jobs)
    return RunView(
        dag_id=dag_id, run_id=run_id, jobs=jobs, finished=finished, refreshed_at=time.time()
    )


def bad_records_preview(dag_id: str, run_id: str, job: str, task: int) -> str | None:
    """The start of map task `task`'s dead-letter file, if the run's manifests name one:
    never an object the run did not list."""
    view = next((j for j in run_view(dag_id, run_id).jobs if j.name == job), None)
    found = next((b for b in view.bad_records if b.task == task), None) if view else None
    if view is None or found is None:
        return None
    files = airflow_filesystems(_conn_id(dag_id, run_id, view.prefix))
    with files.open_read(found.uri) as f:
        head = f.read(PREVIEW_BYTES + 1)
    text = head[:PREVIEW_BYTES].decode(errors="replace")
    return text + ("\n... (more in the file)" if len(head) > PREVIEW_BYTES else "")


def _conn_id(dag_id: str, run_id: str, prefix: str) -> str:
    conn_id = run_xcoms(dag_id, run_id, STORAGE_CONN_XCOM_KEY).get(f"{prefix}plan")
    return str(conn_id) if conn_id else "aws_default"


_STEP_PREFIX = re.compile(r"^(.*)step_(\d+)\.$")


def _next_step(prefix: str) -> str | None:
    """The prefix of the step after this one of a multi-step job (step_1. -> step_2.)."""
    found = _STEP_PREFIX.match(prefix)
    return f"{found.group(1)}step_{int(found.group(2)) + 1}." if found else None


def _step_order(prefix: str) -> tuple[str, int]:
    found = _STEP_PREFIX.match(prefix)
    return (found.group(1), int(found.group(2))) if found else (prefix, 0)


def _job_view(
    dag_id: str, run_id: str, prefix: str, plan_uri: str, earlier_step: bool = False
) -> JobView:
    """One job, or one step of a multi-step job (its task group step_<k>); an earlier
    step has no commit: its output is the next step's input."""
    files = airflow_filesystems(_conn_id(dag_id, run_id, prefix))
    task_ids = [f"{prefix}{name}" for name in STEP_TASK_IDS]
    instances = run_task_instances(dag_id, run_id, task_ids)
    by_step: dict[str, list[TaskInstanceRow]] = {}
    for ti in instances:
        step = ti.task_id.removeprefix(prefix)
        by_step.setdefault("map" if step in MAP_TASK_IDS else step, []).append(ti)
    steps = [
        StepView(name=name, state=_step_state(by_step.get(name, [])))
        for name in ("plan", "map", "shuffle", "reduce", *(() if earlier_step else ("commit",)))
    ]
    view = JobView(
        name=prefix.rstrip(".") or dag_id,
        prefix=prefix,
        state=_job_state(steps),
        steps=steps,
        phases=[],
    )
    commit_uri = run_xcoms(dag_id, run_id, "return_value").get(f"{prefix}commit")
    try:
        history, num_reduce_tasks = _history(files, plan_uri, commit_uri, view, earlier_step)
    except Exception as exc:  # storage down, no credentials: say so, show Airflow's side
        view.problems.append(f"cannot read the run's manifests: {type(exc).__name__}")
        history, num_reduce_tasks = None, None
    if history is None:
        if not earlier_step:  # (an earlier step's Airflow tasks tell its phases)
            view.steps = [s for s in steps if s.name not in ("shuffle", "reduce")] or steps
        return view
    view.input_uri, view.input_bytes = history.input_uri, history.input_bytes
    view.counters = history.counters
    view.partitions = history.partitions
    view.phases.append(_phase("map", history.map, history.num_map_tasks, by_step.get("map", [])))
    if history.num_partitions:
        reduces = by_step.get("reduce", [])
        view.phases.append(_phase("reduce", history.reduce, num_reduce_tasks, reduces))
    else:
        view.steps = [s for s in steps if s.name not in ("shuffle", "reduce")]
    if view.output is None:
        view.output = OutputView(uri=history.output_uri, committed=False)
    return view


def _history(
    files: FileSystems, plan_uri: str, commit_uri: object, view: JobView, earlier_step: bool
) -> tuple[JobHistory | None, int | None]:
    """The job's history so far and its number of reduce tasks (None if not yet known)."""
    if isinstance(commit_uri, str):  # committed: the work area may be gone
        manifest = OutputManifest.model_validate_json(files.read_bytes(commit_uri))
        history = read_job_history(files, manifest.history) if manifest.history else None
        view.output = OutputView(
            uri=manifest.output_uri,
            committed=True,
            manifest_uri=commit_uri,
            manifest_link=manifest_link(commit_uri),
            records=manifest.records,
            bytes=manifest.bytes,
            parts=manifest.files,
        )
        if history is None:
            view.problems.append(f"{manifest.output_uri} has no _job_history.json")
            return None, None
        view.bad_records = _bad_records(history, OutputLayout(manifest.output_uri))
        return history, len(history.reduce)
    try:
        plan = read_plan(files, plan_uri)
    except MissingObjectError:
        if earlier_step:  # (not a problem: the commit of the last step removed it)
            view.problems.append(
                "this step's output was the next step's input; its work area went with "
                "the job's commit (the last step's group shows the output)"
            )
        else:
            view.problems.append(f"the plan {plan_uri} is gone (the run was cleaned up)")
        return None, None
    layout = plan.layout
    maps = _manifests(files, layout, "map")
    reduces = _manifests(files, layout, "reduce")
    try:
        num_reduce_tasks: int | None = ShufflePlan.model_validate_json(
            files.read_bytes(layout.shuffle_uri)
        ).num_reduce_tasks
    except MissingObjectError:
        num_reduce_tasks = None
    counters: Counters = {}
    for task in [*maps, *reduces]:
        add_counters(counters, task.counters)
    # Partition sizes as the map outputs make them, before the reducers have run.
    sizes: dict[int, PartFile] = {}
    for task in maps:
        for part in task.files:
            seen = sizes.get(part.partition) or PartFile(
                partition=part.partition, uri="", records=0, bytes=0
            )
            sizes[part.partition] = seen.model_copy(
                update={"records": seen.records + part.records, "bytes": seen.bytes + part.bytes}
            )
    history = build_history(plan, maps, reduces, list(sizes.values()), counters)
    view.bad_records = [
        BadRecordsView(task=m.task_index, count=m.bad_records, uri=m.bad_records_uri)
        for m in maps
        if m.bad_records_uri
    ]
    return history, num_reduce_tasks


def _manifests(files: FileSystems, layout: RunLayout, phase: str) -> list[TaskManifest]:
    found = [u for u in files.find_all(layout.phase_dir(phase)) if u.endswith("/manifest.json")]

    def read(uri: str) -> TaskManifest | None:
        try:
            return TaskManifest.model_validate_json(files.read_bytes(uri))
        except Exception:  # being written, or broken: the commit's check will name it
            return None

    with ThreadPoolExecutor(READERS) as pool:
        return [m for m in pool.map(read, found) if m is not None]


def _bad_records(history: JobHistory, output: OutputLayout) -> list[BadRecordsView]:
    return [
        BadRecordsView(task=t.index, count=t.bad_records, uri=output.bad_records_uri(t.index))
        for t in history.map
        if t.bad_records
    ]


def _phase(
    name: Literal["map", "reduce"],
    summaries: list[TaskSummary],
    total: int | None,
    instances: list[TaskInstanceRow],
) -> PhaseView:
    done = {s.index: s for s in summaries}
    mapped = {ti.map_index: ti for ti in instances if ti.map_index >= 0}
    size = total if total is not None else max([*done, *mapped], default=-1) + 1
    rows = [_task_row(i, done.get(i), mapped.get(i)) for i in range(min(size, TASK_ROWS))]
    states = [ti.state or "" for ti in mapped.values() if ti.map_index not in done]
    totals = phase_totals(summaries)
    return PhaseView(
        name=name,
        state=_step_state(instances),
        total=total,
        done=len(done),
        running=sum(s in RUNNING_STATES for s in states),
        failed=sum(s in FAILED_STATES for s in states),
        retrying=sum(s == "up_for_retry" for s in states),
        records_in=totals.input_records,
        records_out=totals.output_records,
        bytes_in=totals.input_bytes,
        bytes_out=totals.output_bytes,
        bad_records=totals.bad_records,
        seconds=totals.seconds,
        peak_memory_bytes=totals.peak_memory_bytes,
        tasks=rows,
        more_tasks=max(0, size - TASK_ROWS),
    )


def _task_row(index: int, summary: TaskSummary | None, ti: TaskInstanceRow | None) -> TaskRow:
    label = (ti.label if ti and ti.label and ti.label != str(index) else None) or (
        summary.source if summary and summary.source else f"task {index}"
    )
    row = TaskRow(
        index=index,
        label=label,
        state="success" if summary else ((ti.state if ti else None) or "waiting"),
        try_number=ti.try_number if ti else None,
    )
    if ti and ti.state in RUNNING_STATES and ti.start_date is not None:
        row.seconds = max(0.0, time.time() - ti.start_date.timestamp())
    if summary is None:
        return row
    peak = summary.peak_memory
    return row.model_copy(
        update={
            "attempt": summary.attempt,
            "records_in": summary.input_records,
            "records_out": summary.output_records,
            "bytes_in": summary.input_bytes,
            "bytes_out": summary.output_bytes,
            "seconds": summary.seconds if summary.seconds is not None else _ti_seconds(ti),
            "peak_memory_bytes": peak.worker_bytes if peak else None,
            "bad_records": summary.bad_records,
        }
    )


def _ti_seconds(ti: TaskInstanceRow | None) -> float | None:
    if ti is None or ti.start_date is None or ti.end_date is None:
        return None
    return (ti.end_date - ti.start_date).total_seconds()


def _step_state(instances: list[TaskInstanceRow]) -> str:
    """One state for a step's task instance(s), in the words of Airflow's grid."""
    states = [ti.state or "none" for ti in instances]
    if not states:
        return "none"
    for state in ("failed", "upstream_failed", "up_for_retry", "running", "deferred", "queued"):
        if state in states:
            return state
    if all(state in DONE_STATES for state in states):
        return "success"
    return states[0]


def _job_state(steps: list[StepView]) -> str:
    states = [s.state for s in steps]
    if any(s in FAILED_STATES for s in states):
        return "failed"
    if states[-1] == "success":
        return "success"
    if all(s == "none" for s in states):
        return "queued"
    return "running"
