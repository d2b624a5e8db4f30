"""The Python entry point: a job as a TaskGroup inside any DAG."""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from airflow_mapreduce.airflow import mapreduce_task_group
from airflow_mapreduce.job import parse_job_text

JOB = parse_job_text(
    "dag_id: wc\ninput: {uri: s3://b/in/}\nmapper: {callable: 'jobs:mapper'}\n"
    "reducer: {callable: 'jobs:reducer'}\nreducers: 2\noutput: s3://b/out/\n"
)


def test_group_slots_between_other_tasks() -> None:
    with DAG("pipeline", schedule=None) as dag:
        group = mapreduce_task_group(JOB, group_id="counting")
        EmptyOperator(task_id="extract") >> group >> EmptyOperator(task_id="load")
    order = [t.task_id for t in dag.topological_sort()]
    assert order == [
        "extract", "counting.plan", "counting.map", "counting.shuffle",
        "counting.reduce", "counting.commit", "load",
    ]  # fmt: skip
    assert dag.get_task("counting.plan").input_uri == "s3://b/in/"
    # The shuffle also reads the plan's URI from XCom, hence both upstreams.
    assert dag.get_task("counting.shuffle").upstream_task_ids == {"counting.map", "counting.plan"}


def test_map_only_job_has_no_shuffle_or_reduce() -> None:
    job = JOB.model_copy(update={"reducer": None, "reducers": 0})
    with DAG("maponly", schedule=None) as dag:
        mapreduce_task_group(job)
    assert [t.task_id for t in dag.topological_sort()] == ["wc.plan", "wc.map", "wc.commit"]
