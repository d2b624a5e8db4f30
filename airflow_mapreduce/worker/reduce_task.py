"""A reduce task: k-way merge each partition's sorted runs, run the reducer, write parts."""

from __future__ import annotations

import posixpath
import time

from airflow_mapreduce.plan.layout import RunLayout
from airflow_mapreduce.plan.manifests import write_task_manifest
from airflow_mapreduce.plan.tasks import Counters, PartFile, ReduceTaskSpec, TaskManifest
from airflow_mapreduce.storage import FileSystems, join_uri
from airflow_mapreduce.worker import memory, reporter
from airflow_mapreduce.worker.codec import Codec
from airflow_mapreduce.worker.keys import RecordFormat
from airflow_mapreduce.worker.lifecycle import task_lifecycle
from airflow_mapreduce.worker.map_task import COUNTERS, new_attempt_id
from airflow_mapreduce.worker.merge import merge_block_lists
from airflow_mapreduce.worker.outputs import open_part, part_uri
from airflow_mapreduce.worker.records import Tally, iter_run_blocks, merge_read_block
from airflow_mapreduce.worker.steps import Step


def reduce_env(spec: ReduceTaskSpec, attempt: str, partition: int) -> dict[str, str]:
    """Hadoop's job settings as the streaming reducer sees them (dots become underscores)."""
    streaming = spec.job.dataplane.streaming
    return {
        **streaming.cmdenv,
        "mapreduce_job_name": spec.dag_id,
        "mapreduce_job_id": spec.run_id,
        "mapreduce_job_reduces": str(spec.job.num_partitions),
        "mapreduce_task_attempt_id": attempt,
        "mapreduce_task_ismap": "false",
        "mapreduce_task_partition": str(partition),
        "stream_map_output_field_separator": streaming.separator,
        "stream_num_map_output_key_fields": str(streaming.key_fields),
    }


def run_reduce_task(files: FileSystems, spec: ReduceTaskSpec) -> TaskManifest:
    attempt = new_attempt_id()
    started_at = time.time()
    info = reporter.TaskInfo("reduce", spec.dag_id, spec.run_id, spec.task_index, attempt)
    with reporter.running(info), task_lifecycle(spec.job.dataplane.lifecycle):
        return _run(files, spec, attempt, info.counters, started_at)


def _run(
    files: FileSystems, spec: ReduceTaskSpec, attempt: str, counters: Counters, started_at: float
) -> TaskManifest:
    assert spec.job.reducer is not None, "a reduce task needs a reducer"
    fmt = RecordFormat.of(spec.job)
    formats = spec.job.dataplane.formats
    codec = Codec(spec.job.codec)
    input_records = input_bytes = 0
    parts = []
    for partition in sorted(spec.inputs):
        env = reduce_env(spec, attempt, partition)
        where = f"partition {partition} (reduce task {spec.task_index})"
        reducer = Step(spec.job.reducer, "reducer", codec, fmt, counters, env, where=where)
        # Runs are sorted by key; merging by key (not line) is right for any separator.
        uris = spec.inputs[partition]
        block = merge_read_block(spec.job.dataplane.memory.sort_buffer, len(uris))
        seen = Tally()
        runs = [iter_run_blocks(files, u, block, seen) for u in uris]
        merged = merge_block_lists(runs, key=None if fmt.lines_sort_as_keys else fmt.order_of)
        # Into this attempt's folder; the commit step promotes it to the output.
        final = part_uri(spec.outputs[partition], formats)
        uri = join_uri(RunLayout.attempt_dir_of(spec.task_dir, attempt), posixpath.basename(final))
        with open_part(files, uri, formats, fmt.separator) as writer:
            reducer.reduce_into(merged, writer)
        stored = writer.bytes if formats.compression is None else files.size(uri)
        input_records += seen.count
        input_bytes += seen.bytes
        parts.append(PartFile(partition=partition, uri=uri, records=writer.records, bytes=stored))
    group = counters.setdefault(COUNTERS, {})
    group["reduce_input_records"] = input_records
    group["reduce_output_records"] = sum(p.records for p in parts)
    return write_task_manifest(
        files, spec, attempt, parts, input_records, counters, peak_memory=memory.task_peak(),
        input_bytes=input_bytes, started_at=started_at,
    )  # fmt: skip
