"""A run's metrics through Airflow's own metrics (StatsD, OpenTelemetry or Datadog, as
Airflow is configured; nothing is sent when its metrics are off).

Names are ``mapreduce.<job>.<phase>.<measure>`` (docs/metrics.md lists each one): the plan
sends what it found to read, the commit what every phase did (from the run's job history),
the job's totals and every counter (the user's and the framework's). Metrics never fail a
task: a failure to send is logged once per task and the task goes on.
"""

from __future__ import annotations

import logging
import re
import time
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from airflow.sdk import Context

from airflow_mapreduce.plan.history import JobHistory, phase_totals, read_job_history
from airflow_mapreduce.plan.output_state import OutputManifest
from airflow_mapreduce.plan.tasks import PartFile, RunPlan
from airflow_mapreduce.storage import FileSystems
from airflow_mapreduce.version_compat import airflow_stats

log = logging.getLogger(__name__)

PREFIX = "mapreduce"
# Airflow drops a name over 250 characters (StatsD), or over 255 with its prefix and a dot
# (OpenTelemetry); with these caps per segment the longest name here is 201.
JOB_MAX, GROUP_MAX, COUNTER_MAX = 80, 40, 60
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_-]")

T = TypeVar("T")


def stat_segment(text: str, max_length: int) -> str:
    """`text` as one segment of a stat name, of the characters every Airflow metrics backend
    accepts. Dots become "__" (as Airflow does for a task group's task ids) so that a segment
    never shifts the ones after it; a long one is cut and keeps its crc32 to stay distinct."""
    segment = _NOT_ALLOWED.sub("_", text.replace(".", "__")) or "_"
    if len(segment) <= max_length:
        return segment
    return f"{segment[: max_length - 9]}-{zlib.crc32(text.encode()):08x}"


def stat_name(job: str, phase: str, measure: str) -> str:
    return f"{PREFIX}.{stat_segment(job, JOB_MAX)}.{phase}.{measure}"


def counter_stat_name(job: str, group: str, counter: str) -> str:
    return stat_name(
        job, "counters", f"{stat_segment(group, GROUP_MAX)}.{stat_segment(counter, COUNTER_MAX)}"
    )


def emit_plan_metrics(plan: RunPlan, context: Context) -> None:
    """What the plan found: input bytes, splits and map tasks (gauges)."""
    send = _Sender(plan.dag_id, context)
    send.gauge("plan", "input_bytes", plan.input_bytes)
    send.gauge("plan", "splits", plan.num_splits)
    send.gauge("plan", "map_tasks", plan.num_map_tasks)


def emit_commit_metrics(files: FileSystems, manifest: OutputManifest, context: Context) -> None:
    """Per phase what its tasks did, the job's totals and every counter."""
    send = _Sender(manifest.dag_id, context)
    history = send.attempt(lambda: _history(files, manifest))
    if history is not None:
        _send_phases(send, history)
    started = getattr(context.get("dag_run"), "start_date", None)
    if isinstance(started, datetime):
        send.timing("job", "duration", time.time() - started.timestamp())
    send.incr("job", "output_records", manifest.records)
    send.incr("job", "output_bytes", manifest.bytes)
    send.gauge("job", "partition_skew", partition_skew(manifest.files))
    for group, counters in sorted(manifest.counters.items()):
        for counter, value in sorted(counters.items()):
            send.counter(group, counter, value)


def partition_skew(parts: list[PartFile]) -> float:
    """The largest part's records over the mean: 1.0 is even (an empty output too)."""
    total = sum(p.records for p in parts)
    if total == 0:
        return 1.0
    return max(p.records for p in parts) * len(parts) / total


def _history(files: FileSystems, manifest: OutputManifest) -> JobHistory | None:
    return read_job_history(files, manifest.history) if manifest.history else None


def _send_phases(send: _Sender, history: JobHistory) -> None:
    for phase, tasks in (("map", history.map), ("reduce", history.reduce)):
        if not tasks:  # a map-only job has no reduce phase
            continue
        totals = phase_totals(tasks)
        if totals.seconds is not None:
            send.timing(phase, "duration", totals.seconds)
        send.incr(phase, "tasks", totals.tasks)
        send.incr(phase, "input_records", totals.input_records)
        send.incr(phase, "output_records", totals.output_records)
        send.incr(phase, "input_bytes", totals.input_bytes)
        send.incr(phase, "output_bytes", totals.output_bytes)
        send.incr(phase, "bad_records", totals.bad_records)
        if totals.peak_memory_bytes:  # (manifests of older workers have none)
            send.gauge(phase, "peak_memory_bytes", totals.peak_memory_bytes)


class _Sender:
    """Sends one job's metrics with Airflow's tags; the first failure is logged, none raised."""

    def __init__(self, job: str, context: Context) -> None:
        self.job = job
        self.dag_id = str(getattr(context.get("dag_run"), "dag_id", None) or job)
        self.warned = False

    def gauge(self, phase: str, measure: str, value: float) -> None:
        name = stat_name(self.job, phase, measure)
        self.attempt(lambda: airflow_stats.gauge(name, value, tags=self._tags(phase)))

    def incr(self, phase: str, measure: str, count: int) -> None:
        name = stat_name(self.job, phase, measure)
        self.attempt(lambda: airflow_stats.incr(name, count, tags=self._tags(phase)))

    def timing(self, phase: str, measure: str, seconds: float) -> None:
        name, delta = stat_name(self.job, phase, measure), timedelta(seconds=max(0.0, seconds))
        self.attempt(lambda: airflow_stats.timing(name, delta, tags=self._tags(phase)))

    def counter(self, group: str, counter: str, value: int) -> None:
        """A job counter; a negative total goes as a decrement (Airflow's incr refuses a
        negative count: OpenTelemetry's counters only go up)."""
        name, tags = counter_stat_name(self.job, group, counter), self._tags("counters")
        if value < 0:
            self.attempt(lambda: airflow_stats.decr(name, -value, tags=tags))
        else:
            self.attempt(lambda: airflow_stats.incr(name, value, tags=tags))

    def attempt(self, send: Callable[[], T]) -> T | None:
        try:
            return send()
        except Exception as exc:
            if not self.warned:
                self.warned = True
                log.warning("Metrics of %s not sent: %r; the task goes on", self.job, exc)
            return None

    def _tags(self, phase: str) -> dict[str, str]:
        return {"dag_id": self.dag_id, "job": self.job, "phase": phase}
