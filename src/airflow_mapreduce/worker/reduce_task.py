"""A reduce task: k-way merge each partition's sorted runs, run the reducer, write parts."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from operator import itemgetter

from airflow_mapreduce.plan.layout import RunLayout
from airflow_mapreduce.plan.tasks import Counters, PartFile, ReduceTaskSpec, TaskManifest
from airflow_mapreduce.storage import FileSystems, join_uri
from airflow_mapreduce.worker.codec import Codec
from airflow_mapreduce.worker.map_task import COUNTERS, new_attempt_id
from airflow_mapreduce.worker.records import iter_run
from airflow_mapreduce.worker.steps import Step


def run_reduce_task(files: FileSystems, spec: ReduceTaskSpec) -> TaskManifest:
    assert spec.job.reducer is not None, "a reduce task needs a reducer"
    attempt = new_attempt_id()
    counters: Counters = {}
    reducer = Step(spec.job.reducer, "reducer", Codec(spec.job.codec), counters)
    input_records = 0
    parts = []
    for partition in sorted(spec.inputs):
        seen = _Counted(
            heapq.merge(*(iter_run(files, u) for u in spec.inputs[partition]), key=itemgetter(0))
        )
        records = written = 0
        # Into this attempt's folder; the commit step promotes it to spec.outputs[partition].
        uri = join_uri(RunLayout.attempt_dir_of(spec.task_dir, attempt), f"part-{partition:05d}")
        with files.open_write(uri) as out:
            for line in reducer.reduce_output_lines(seen):
                out.write(line)
                records += 1
                written += len(line)
        input_records += seen.count
        parts.append(
            PartFile(
                partition=partition, uri=uri, records=records, bytes=written
            )
        )
    output_records = sum(p.records for p in parts)
    group = counters.setdefault(COUNTERS, {})
    group["reduce_input_records"] = input_records
    group["reduce_output_records"] = output_records
    manifest = TaskManifest(
        kind="reduce",
        dag_id=spec.dag_id,
        run_id=spec.run_id,
        task_index=spec.task_index,
        attempt=attempt,
        files=parts,
        input_records=input_records,
        output_records=output_records,
        counters=counters,
    )
    files.write_bytes(spec.manifest_uri, manifest.model_dump_json().encode())
    return manifest


class _Counted:
    """Counts records as they stream past, without holding them."""

    def __init__(self, records: Iterator[tuple[bytes, bytes]]) -> None:
        self._records = records
        self.count = 0

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        for record in self._records:
            self.count += 1
            yield record
