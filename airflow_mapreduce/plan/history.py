"""A run's job history (Hadoop's JobHistory): per task what it read and wrote, when, and
its peak memory; per phase the totals.

Built from the task manifests: by the commit, which writes it beside ``_manifest.json``
as ``_job_history.json`` so that it outlives the work area, and by the MapReduce view
while a run is going. The metrics of a job are read from it too.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field, ValidationError

from airflow_mapreduce.job.base import Model
from airflow_mapreduce.plan.tasks import Counters, PartFile, PeakMemory, RunPlan, TaskManifest
from airflow_mapreduce.storage import FileSystems, MissingObjectError


class TaskSummary(Model):
    index: int
    attempt: str
    source: str = ""
    input_records: int
    output_records: int
    input_bytes: int
    output_bytes: int
    bad_records: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    peak_memory: PeakMemory | None = None

    @classmethod
    def of(cls, manifest: TaskManifest) -> TaskSummary:
        return cls(
            index=manifest.task_index,
            attempt=manifest.attempt,
            source=manifest.source,
            input_records=manifest.input_records,
            output_records=manifest.output_records,
            input_bytes=manifest.input_bytes,
            output_bytes=manifest.output_bytes,
            bad_records=manifest.bad_records,
            started_at=manifest.started_at,
            finished_at=manifest.finished_at,
            peak_memory=manifest.peak_memory,
        )

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)


@dataclass(frozen=True)
class PhaseTotals:
    """One phase's finished tasks, summed."""

    tasks: int
    input_records: int
    output_records: int
    input_bytes: int
    output_bytes: int
    bad_records: int
    started_at: float | None  # the first task's start
    finished_at: float | None  # the last task's end
    peak_memory_bytes: int  # the largest worker peak of its tasks

    @property
    def seconds(self) -> float | None:
        """Wall time of the phase: first start to last end (queueing between not counted)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)


def phase_totals(tasks: list[TaskSummary]) -> PhaseTotals:
    starts = [t.started_at for t in tasks if t.started_at is not None]
    ends = [t.finished_at for t in tasks if t.finished_at is not None]
    return PhaseTotals(
        tasks=len(tasks),
        input_records=sum(t.input_records for t in tasks),
        output_records=sum(t.output_records for t in tasks),
        input_bytes=sum(t.input_bytes for t in tasks),
        output_bytes=sum(t.output_bytes for t in tasks),
        bad_records=sum(t.bad_records for t in tasks),
        started_at=min(starts, default=None),
        finished_at=max(ends, default=None),
        peak_memory_bytes=max(
            (t.peak_memory.worker_bytes for t in tasks if t.peak_memory), default=0
        ),
    )


class JobHistory(Model):
    dag_id: str
    run_id: str
    input_uri: str
    output_uri: str
    input_bytes: int = Field(ge=0, description="What the plan found to read.")
    num_map_tasks: int
    num_partitions: int = Field(description="0 for a map-only job.")
    map: list[TaskSummary]
    reduce: list[TaskSummary] = Field(default_factory=list)
    partitions: list[PartFile] = Field(
        default_factory=list, description="The output's parts: how even the partitioner was."
    )
    counters: Counters = Field(default_factory=dict)


def build_history(
    plan: RunPlan,
    map_manifests: list[TaskManifest],
    reduce_manifests: list[TaskManifest],
    partitions: list[PartFile],
    counters: Counters,
) -> JobHistory:
    """The history of the tasks found so far (all of them, at commit)."""
    return JobHistory(
        dag_id=plan.dag_id,
        run_id=plan.run_id,
        input_uri=plan.input_uri,
        output_uri=plan.output_uri,
        input_bytes=plan.input_bytes,
        num_map_tasks=plan.num_map_tasks,
        num_partitions=plan.job.num_partitions,
        map=sorted((TaskSummary.of(m) for m in map_manifests), key=lambda t: t.index),
        reduce=sorted((TaskSummary.of(m) for m in reduce_manifests), key=lambda t: t.index),
        partitions=sorted(partitions, key=lambda p: p.partition),
        counters=counters,
    )


def read_job_history(files: FileSystems, history_uri: str) -> JobHistory | None:
    """A committed run's history; None if it is gone or not one of ours."""
    try:
        return JobHistory.model_validate_json(files.read_bytes(history_uri))
    except (MissingObjectError, ValidationError):
        return None
