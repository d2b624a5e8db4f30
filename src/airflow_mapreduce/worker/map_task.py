"""A map task: read its splits, run the mapper, partition, sort, combine, write runs."""

from __future__ import annotations

import posixpath
import uuid
import zlib
from operator import itemgetter

from airflow_mapreduce.plan.layout import RunLayout
from airflow_mapreduce.plan.tasks import Counters, InputSplit, MapTaskSpec, PartFile, TaskManifest
from airflow_mapreduce.storage import FileSystems, join_uri
from airflow_mapreduce.worker.codec import Codec, join_record
from airflow_mapreduce.worker.records import read_split
from airflow_mapreduce.worker.steps import Step

COUNTERS = "airflow-mapreduce"
Record = tuple[bytes, bytes]


def partition_of(key: bytes, num_partitions: int) -> int:
    """Stable across processes and machines (never Python's salted hash())."""
    return zlib.crc32(key) % num_partitions


def new_attempt_id() -> str:
    return uuid.uuid4().hex[:12]


def split_env(spec: MapTaskSpec, split: InputSplit) -> dict[str, str]:
    """Hadoop's job settings as the streaming command sees them (dots become underscores)."""
    return {
        "mapreduce_task_ismap": "true",
        "mapreduce_task_partition": str(spec.task_index),
        "mapreduce_map_input_file": split.uri,
        "mapreduce_map_input_start": str(split.offset),
        "mapreduce_map_input_length": str(split.length if split.length is not None else -1),
    }


def run_map_task(files: FileSystems, spec: MapTaskSpec) -> TaskManifest:
    attempt = new_attempt_id()
    counters: Counters = {}
    codec = Codec(spec.job.codec)
    mapper = Step(spec.job.mapper, "mapper", codec, counters)
    input_records = 0

    attempt_dir = RunLayout.attempt_dir_of(spec.task_dir, attempt)
    if spec.output_uri is not None:  # map-only: the commit step promotes it to output_uri
        records = written = 0
        uri = join_uri(attempt_dir, posixpath.basename(spec.output_uri))
        with files.open_write(uri) as out:
            for split in spec.splits:
                start, block = read_split(files, split)
                input_records += _count_lines(block)
                for line in mapper.map_output_lines(block, start, split, split_env(spec, split)):
                    out.write(line)
                    records += 1
                    written += len(line)
        part = PartFile(
            partition=spec.task_index, uri=uri, records=records, bytes=written
        )
        return _commit(files, spec, attempt, [part], input_records, records, counters)

    num_partitions = spec.job.num_partitions
    buckets: list[list[Record]] = [[] for _ in range(num_partitions)]
    for split in spec.splits:
        start, block = read_split(files, split)
        input_records += _count_lines(block)
        for key, value in mapper.map_records(block, start, split, split_env(spec, split)):
            buckets[partition_of(key, num_partitions)].append((key, value))
    _count(counters, "map_output_records", sum(len(b) for b in buckets))

    combiner = Step(spec.job.combiner, "combiner", codec, counters) if spec.job.combiner else None
    parts = []
    for partition, bucket in enumerate(buckets):
        bucket.sort(key=itemgetter(0))  # stable: values keep their map order per key
        combined = bucket
        if combiner is not None and bucket:
            _count(counters, "combine_input_records", len(bucket))
            combined = sorted(combiner.reduce_records(bucket), key=itemgetter(0))
            _count(counters, "combine_output_records", len(combined))
        uri = join_uri(attempt_dir, f"part-{partition:05d}")
        data = b"".join(join_record(k, v) for k, v in combined)
        files.write_bytes(uri, data)
        parts.append(PartFile(partition=partition, uri=uri, records=len(combined), bytes=len(data)))
    output_records = sum(p.records for p in parts)
    return _commit(files, spec, attempt, parts, input_records, output_records, counters)


def _commit(
    files: FileSystems,
    spec: MapTaskSpec,
    attempt: str,
    parts: list[PartFile],
    input_records: int,
    output_records: int,
    counters: Counters,
) -> TaskManifest:
    """Write the manifest last: it is what makes this attempt's files the task's output."""
    _count(counters, "map_input_records", input_records)
    manifest = TaskManifest(
        kind="map",
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


def _count_lines(block: bytes) -> int:
    return block.count(b"\n") + (1 if block and not block.endswith(b"\n") else 0)


def _count(counters: Counters, name: str, amount: int) -> None:
    bucket = counters.setdefault(COUNTERS, {})
    bucket[name] = bucket.get(name, 0) + amount
