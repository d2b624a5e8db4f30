"""Data-plane settings in YAML: strict, with errors that say what to write instead."""

from __future__ import annotations

import pytest

from airflow_mapreduce.errors import JobSpecError
from airflow_mapreduce.job import parse_job_text
from airflow_mapreduce.plan.tasks import JobRuntime

BASE = (
    "dag_id: j\ninput: {uri: x}\noutput: y\nreducers: 2\n"
    "mapper: {command: [cat]}\nreducer: {command: [cat]}\n"
)


def test_settings_reach_the_worker_runtime() -> None:
    job = parse_job_text(
        BASE
        + "streaming: {separator: ',', key_fields: 2, cmdenv: {MODE: fast}}\n"
        + "partitioner: {key_fields: 1}\nmemory: {sort_buffer: 8MiB}\n"
        + "formats: {input: jsonlines, output: jsonlines, compression: zstd}\n"
        + "bad_records: {max_ratio: 0.01}\n"
    )
    dataplane = JobRuntime.from_job(job, num_partitions=2).dataplane
    assert dataplane.streaming.separator == ","
    assert dataplane.streaming.cmdenv == {"MODE": "fast"}
    assert dataplane.partitioner.key_fields == 1
    assert dataplane.memory.sort_buffer == 8 * 1024**2
    assert dataplane.formats.compression == "zstd"
    assert dataplane.bad_records.enabled


@pytest.mark.parametrize(
    ("yaml", "expected"),
    [
        ("partitioner: {key_fields: 3}\n", "partition on at most as many fields"),
        ("streaming: {seperator: ','}\n", "seperator"),
        ("streaming: {cmdenv: {'1BAD': x}}\n", "invalid environment variable name"),
        ("memory: {sort_buffer: 1KiB}\n", "at least 64KiB"),
        ("formats: {compression: lz4}\n", "gzip"),
        ("bad_records: {max_ratio: 2}\n", "expected a number <= 1.0, found 2"),
        ("lifecycle: {setup: not-a-callable}\n", "package.module:function"),
    ],
)
def test_bad_settings_are_clear_errors(yaml: str, expected: str) -> None:
    with pytest.raises(JobSpecError, match=expected):
        parse_job_text(BASE + yaml)


def test_key_field_partitioning_needs_text_records() -> None:
    callables = BASE.replace("{command: [cat]}", "{callable: m:f}")
    with pytest.raises(JobSpecError, match="partition on a key of its own"):
        parse_job_text(callables + "streaming: {key_fields: 2}\npartitioner: {key_fields: 1}\n")
