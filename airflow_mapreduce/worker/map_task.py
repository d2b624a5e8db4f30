"""A map task: read its splits, run the mapper, partition, sort (spilling), combine, write."""

from __future__ import annotations

import posixpath
import sys
import time
import uuid
from collections.abc import Iterator

from airflow_mapreduce.errors import CommandFailedError
from airflow_mapreduce.plan.layout import RunLayout
from airflow_mapreduce.plan.manifests import write_task_manifest
from airflow_mapreduce.plan.tasks import Counters, InputSplit, MapTaskSpec, PartFile, TaskManifest
from airflow_mapreduce.storage import FileSystems, join_uri
from airflow_mapreduce.worker import memory, reporter
from airflow_mapreduce.worker.bad_records import DeadLetters
from airflow_mapreduce.worker.codec import Codec
from airflow_mapreduce.worker.keys import RecordFormat
from airflow_mapreduce.worker.lifecycle import task_lifecycle
from airflow_mapreduce.worker.line_buffer import LineBuffer
from airflow_mapreduce.worker.outputs import PartWriter, open_part, part_uri
from airflow_mapreduce.worker.pair_buffer import PairBuffer
from airflow_mapreduce.worker.records import iter_split_blocks
from airflow_mapreduce.worker.sort_command import SortedCombine, groups_by_sort
from airflow_mapreduce.worker.spill import write_lines
from airflow_mapreduce.worker.steps import Step, splits_named

COUNTERS = "airflow-mapreduce"
DEAD_LETTER_NAME = "bad-records.jsonl"


def new_attempt_id() -> str:
    return uuid.uuid4().hex[:12]


def job_env(spec: MapTaskSpec, attempt: str) -> dict[str, str]:
    """Job settings every command of the job sees (Hadoop's names, dots as underscores)."""
    dataplane = spec.job.dataplane
    return {
        **dataplane.streaming.cmdenv,
        "mapreduce_job_name": spec.dag_id,
        "mapreduce_job_id": spec.run_id,
        "mapreduce_job_reduces": str(spec.job.num_partitions),
        "mapreduce_task_attempt_id": attempt,
        "stream_map_output_field_separator": dataplane.streaming.separator,
        "stream_num_map_output_key_fields": str(dataplane.streaming.key_fields),
    }


def task_env(spec: MapTaskSpec) -> dict[str, str]:
    """Hadoop's per-task settings as the streaming mapper sees them: one mapper process
    reads every split of the task, so a task of several splits has no
    mapreduce_map_input_* (a wrong file name would be worse than none); those come with
    streaming.per_split_env (a process per split, see split_env)."""
    if len(spec.splits) == 1:
        return split_env(spec, spec.splits[0])
    return {
        "mapreduce_task_ismap": "true",
        "mapreduce_task_partition": str(spec.task_index),
        **_input_name_env(spec),
    }


def split_env(spec: MapTaskSpec, split: InputSplit) -> dict[str, str]:
    """Hadoop's per-split settings as the streaming mapper sees them."""
    return {
        "mapreduce_task_ismap": "true",
        "mapreduce_task_partition": str(spec.task_index),
        "mapreduce_map_input_file": split.uri,
        "mapreduce_map_input_start": str(split.offset),
        "mapreduce_map_input_length": str(split.length if split.length is not None else -1),
        **_input_name_env(spec),
    }


def _input_name_env(spec: MapTaskSpec) -> dict[str, str]:
    """Which of the job's inputs (inputs:) the task reads, by its param name."""
    if not spec.job.inputs:
        return {}
    return {"mapreduce_map_input_name": spec.job.inputs[spec.input_index].name}


def run_map_task(files: FileSystems, spec: MapTaskSpec) -> TaskManifest:
    attempt = new_attempt_id()
    started_at = time.time()
    info = reporter.TaskInfo("map", spec.dag_id, spec.run_id, spec.task_index, attempt)
    with reporter.running(info), task_lifecycle(spec.job.dataplane.lifecycle):
        try:
            return _run(files, spec, attempt, info.counters, started_at, skip_mode=False)
        except CommandFailedError as exc:
            if exc.role != "mapper" or not spec.job.dataplane.bad_records.enabled:
                raise  # (a failing combiner is not the input's fault: no skip mode for it)
            # Hadoop's skip mode: run the command again on smaller and smaller parts of the
            # input to find the records it crashes on; they become bad records.
            print(
                f"{exc}\nmapper command failed; rerunning the task in skip mode (bad_records "
                "is set): input blocks are fed one command run each, failing blocks bisected",
                file=sys.stderr,
                flush=True,
            )
            info.counters.clear()  # the failed pass's counters do not count
            return _run(files, spec, attempt, info.counters, started_at, skip_mode=True)


def _run(
    files: FileSystems,
    spec: MapTaskSpec,
    attempt: str,
    counters: Counters,
    started_at: float,
    skip_mode: bool,
) -> TaskManifest:
    dataplane = spec.job.dataplane
    codec = Codec(spec.job.codec)
    fmt = RecordFormat.of(spec.job)
    env = job_env(spec, attempt)
    mapper = Step(spec.job.mapper_of(spec.input_index), "mapper", codec, fmt, counters, env,
                  skip_mode=skip_mode, input_pairs=spec.job.input_pairs)  # fmt: skip
    dead = DeadLetters(dataplane.bad_records, "mapper")
    attempt_dir = RunLayout.attempt_dir_of(spec.task_dir, attempt)
    source = _InputCounter()
    parts: list[PartFile] = []

    if spec.output_uri is not None:  # map-only: the mapper writes the job's output
        # Into this attempt's folder; the commit step promotes it to the output.
        final = part_uri(spec.output_uri, dataplane.formats)
        uri = join_uri(attempt_dir, posixpath.basename(final))
        with open_part(files, uri, dataplane.formats, fmt.separator) as writer:
            _map_splits(files, spec, mapper, source, dead, writer)
        stored = writer.bytes if dataplane.formats.compression is None else files.size(uri)
        parts.append(
            PartFile(partition=spec.task_index, uri=uri, records=writer.records, bytes=stored)
        )
    else:
        with _sort_buffer(spec, fmt, codec, counters, env) as buffer:  # removes its spills
            _map_splits(files, spec, mapper, source, dead, buffer)
            _count(counters, "map_output_records", buffer.records)
            for partition, records in buffer.partitions():
                uri = join_uri(attempt_dir, f"part-{partition:05d}")
                with files.open_write(uri) as out:
                    count, written = write_lines(out, records)
                parts.append(PartFile(partition=partition, uri=uri, records=count, bytes=written))
            _count(counters, "spills", buffer.spills)
            if spec.job.combiner is not None:
                _count(counters, "combine_input_records", buffer.combine_input)
                _count(counters, "combine_output_records", buffer.combine_output)

    input_records, input_bytes = source.records, source.bytes
    dead.check_ratio(input_records)
    dead_uri = dead.write(files, join_uri(attempt_dir, DEAD_LETTER_NAME))
    _count(counters, "map_input_records", input_records)
    _count(counters, "map_input_bytes", input_bytes)
    if dead.count:
        _count(counters, "bad_records", dead.count)
    return write_task_manifest(
        files, spec, attempt, parts, input_records, counters, dead.count, dead_uri,
        memory.task_peak(), input_bytes=input_bytes, started_at=started_at,
    )  # fmt: skip


def _map_splits(
    files: FileSystems,
    spec: MapTaskSpec,
    mapper: Step,
    source: _InputCounter,
    dead: DeadLetters,
    sink: LineBuffer | PairBuffer | SortedCombine | PartWriter,
) -> None:
    """The mapper over the task's splits in order: a streaming command starts once per
    task, or once per split (with the split's env) if the job sets per_split_env."""
    jsonlines = spec.job.dataplane.formats.input == "jsonlines"

    def blocks_of(split: InputSplit) -> Iterator[tuple[int, bytes]]:
        return source.blocks(files, split)

    if mapper.spec.command is None or not spec.job.dataplane.streaming.per_split_env:
        mapper.map_splits(spec.splits, blocks_of, task_env(spec), dead, jsonlines, sink)
        return
    for split in spec.splits:
        mapper.map_splits([split], blocks_of, split_env(spec, split), dead, jsonlines, sink)


def _sort_buffer(
    spec: MapTaskSpec, fmt: RecordFormat, codec: Codec, counters: Counters, env: dict[str, str]
) -> LineBuffer | PairBuffer | SortedCombine:
    """Python objects for an all-Python job; record lines when a command takes part, sorted
    by GNU sort when a combiner follows (and sort can cut the keys)."""
    budget = spec.job.dataplane.memory.sort_buffer
    if spec.job.combiner is None:
        return PairBuffer(fmt, budget) if codec.kind == "json" else LineBuffer(fmt, budget)
    where = f"the output of map task {spec.task_index} ({splits_named(spec.splits)})"
    combiner = Step(spec.job.combiner, "combiner", codec, fmt, counters, env, where=where)
    if codec.kind == "json":  # every step is a callable
        name = f"combiner {spec.job.combiner.python}"
        return PairBuffer(fmt, budget, combiner.function, name, merge=combiner.merge)
    if groups_by_sort(fmt):
        return SortedCombine(fmt, budget, combiner.combine_sorted)
    return LineBuffer(fmt, budget, combiner.combine)


class _InputCounter:
    """Counts input lines and bytes as the mapper consumes the blocks."""

    def __init__(self) -> None:
        self.records = 0
        self.bytes = 0

    def blocks(self, files: FileSystems, split: InputSplit) -> Iterator[tuple[int, bytes]]:
        for start, block in iter_split_blocks(files, split):
            self.records += _count_lines(block)
            self.bytes += len(block)
            yield start, block


def _count_lines(block: bytes) -> int:
    return block.count(b"\n") + (1 if block and not block.endswith(b"\n") else 0)


def _count(counters: Counters, name: str, amount: int) -> None:
    bucket = counters.setdefault(COUNTERS, {})
    bucket[name] = bucket.get(name, 0) + amount
