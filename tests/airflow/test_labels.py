"""Mapped task labels (map_index_template) say what each task reads."""

from __future__ import annotations

from typing import Any, cast

import jinja2

from airflow_mapreduce.airflow import build_dag
from airflow_mapreduce.airflow.labels import human_bytes, task_label
from airflow_mapreduce.job import StepSpec, parse_job_text
from airflow_mapreduce.plan.tasks import InputSplit, JobRuntime, MapTaskSpec, ReduceTaskSpec

RUNTIME = JobRuntime(mapper=StepSpec(command=["cat"]), num_partitions=8, codec="raw")
COMMON: dict[str, Any] = {
    "dag_id": "d",
    "run_id": "r",
    "job": RUNTIME,
    "task_dir": "t",
    "manifest_uri": "m",
}


def test_map_label_names_the_first_split_and_counts_the_rest() -> None:
    splits = [
        InputSplit(uri="s3://logs/2024/app.log", offset=64 * 2**20, length=64 * 2**20),
        InputSplit(uri="s3://logs/2024/b.gz", offset=0, length=None, compression="gzip"),
    ]
    spec = MapTaskSpec(task_index=3, splits=splits, **COMMON)
    assert task_label(spec) == "split 3: app.log[64MiB:128MiB] +1 more"
    assert task_label(MapTaskSpec(task_index=0, splits=splits[1:], **COMMON)) == (
        "split 0: b.gz (whole file)"
    )


def test_reduce_label_lists_its_partitions() -> None:
    def spec(parts: list[int]) -> ReduceTaskSpec:
        return ReduceTaskSpec(
            task_index=0, inputs={p: [] for p in parts}, outputs={p: "o" for p in parts}, **COMMON
        )

    assert task_label(spec([2])) == "partition 2"
    assert task_label(spec([5, 1, 3, 7])) == "partitions 1, 3, 5 +1 more"


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 312, 1536, 2**20, 3 * 2**30)] == [
        "0", "312B", "1.5KiB", "1MiB", "3GiB",
    ]  # fmt: skip


def test_pod_label_comes_from_the_spec_uri() -> None:
    job = parse_job_text(
        "dag_id: k\ninput: {uri: 's3://a/in/'}\nmapper: {command: [cat]}\n"
        "reducers: 0\noutput: 's3://a/out/'\nbackend: kubernetes\n"
    )
    mapped = build_dag(job).get_task("map")
    pod = cast(Any, mapped).unmap({"arguments": ["s3://a/out/_temporary/k/r/map/00003/spec.json"]})
    assert jinja2.Template(pod.map_index_template).render(task=pod) == "map 00003"
