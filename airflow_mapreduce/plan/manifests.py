"""Reading task manifests back, refusing anything missing, truncated or foreign."""

from __future__ import annotations

import time

from pydantic import TypeAdapter, ValidationError

from airflow_mapreduce.errors import MapReduceError, TaskFailedError
from airflow_mapreduce.plan.task_labels import task_label
from airflow_mapreduce.plan.tasks import (
    Counters,
    MapTaskSpec,
    PartFile,
    PeakMemory,
    ReduceTaskSpec,
    RunPlan,
    ShufflePlan,
    TaskManifest,
    TaskSpec,
)
from airflow_mapreduce.storage import FileSystems, MissingObjectError


def read_plan(files: FileSystems, plan_uri: str) -> RunPlan:
    return RunPlan.model_validate_json(files.read_bytes(plan_uri))


def pending_map_specs(files: FileSystems, plan_uri: str) -> tuple[list[str], int]:
    """(spec URIs of the run's map tasks with no manifest yet, number of map tasks).

    What a work-queue map phase enqueues: the URIs come from the plan in storage, not from
    XCom (a run may have 100 000 map tasks), and a retry of the phase redoes only the tasks
    whose output was never committed. One listing of the map folder, not a request per task.
    A manifest present but unreadable is caught by the shuffle's check, which names the task.
    """
    plan = read_plan(files, plan_uri)
    layout = plan.layout
    found = files.find_all(layout.phase_dir("map"))  # .../map/<task>/manifest.json
    done = {uri.rsplit("/", 2)[-2] for uri in found if uri.endswith("/manifest.json")}
    pending = [
        layout.spec_uri("map", index)
        for index in range(plan.num_map_tasks)
        if layout.task_name(index) not in done
    ]
    return pending, plan.num_map_tasks


_TASK_SPEC: TypeAdapter[TaskSpec] = TypeAdapter(TaskSpec)


def read_task_spec(files: FileSystems, spec_uri: str) -> TaskSpec:
    try:
        return _TASK_SPEC.validate_json(files.read_bytes(spec_uri))
    except ValidationError as exc:
        raise TaskFailedError(
            f"task spec {spec_uri} is malformed: {exc}; it was written by a different "
            "airflow-mapreduce version? Use the same version in Airflow and the worker image."
        ) from None


def read_task_manifests(
    files: FileSystems,
    plan: RunPlan,
    phase: str,
    num_tasks: int,
    error: type[MapReduceError],
) -> list[TaskManifest]:
    """Every manifest of a phase, checked against the run; raises `error` naming the task."""
    layout = plan.layout
    manifests = []
    for index in range(num_tasks):
        uri = layout.manifest_uri(phase, index)
        where = f"{phase}[{index}]"
        try:
            manifest = TaskManifest.model_validate_json(files.read_bytes(uri))
        except MissingObjectError:
            raise error(
                f"{where} left no manifest at {uri}; its output was never committed. "
                f"Clear and rerun task {phase}[{index}] (it is idempotent)."
            ) from None
        except ValidationError as exc:
            raise error(
                f"{where}: manifest {uri} is truncated or malformed ({exc.error_count()} "
                f"problem(s), first: {exc.errors()[0]['msg']}); rerun {phase}[{index}]."
            ) from None
        found = (manifest.kind, manifest.dag_id, manifest.run_id, manifest.task_index)
        expected = (phase, plan.dag_id, plan.run_id, index)
        if found != expected:
            raise error(
                f"{where}: manifest {uri} belongs to {found}, expected {expected}; "
                "the work area is shared with another run. Rerun the whole DAG run."
            )
        manifests.append(manifest)
    return manifests


def step_output_manifests(
    files: FileSystems, plan: RunPlan, error: type[MapReduceError]
) -> tuple[str, list[TaskManifest]]:
    """(phase, manifests) of the tasks whose parts are the step's output: its reduce tasks,
    or its map tasks if it is map-only."""
    if plan.job.num_partitions == 0:
        phase, num_tasks = "map", plan.num_map_tasks
    else:
        shuffle = ShufflePlan.model_validate_json(files.read_bytes(plan.layout.shuffle_uri))
        phase, num_tasks = "reduce", shuffle.num_reduce_tasks
    return phase, read_task_manifests(files, plan, phase, num_tasks, error)


def write_task_manifest(
    files: FileSystems,
    spec: MapTaskSpec | ReduceTaskSpec,
    attempt: str,
    parts: list[PartFile],
    input_records: int,
    counters: Counters,
    bad_records: int = 0,
    bad_records_uri: str | None = None,
    peak_memory: PeakMemory | None = None,
    *,
    input_bytes: int = 0,
    started_at: float | None = None,
) -> TaskManifest:
    """Write an attempt's manifest, its last object: what makes its files the task's output."""
    manifest = TaskManifest(
        kind="map" if isinstance(spec, MapTaskSpec) else "reduce",
        dag_id=spec.dag_id,
        run_id=spec.run_id,
        task_index=spec.task_index,
        attempt=attempt,
        files=parts,
        input_records=input_records,
        output_records=sum(p.records for p in parts),
        counters=counters,
        bad_records=bad_records,
        bad_records_uri=bad_records_uri,
        peak_memory=peak_memory,
        input_bytes=input_bytes,
        source=task_label(spec),
        started_at=started_at,
        finished_at=time.time(),
    )
    files.write_bytes(spec.manifest_uri, manifest.model_dump_json().encode())
    return manifest
