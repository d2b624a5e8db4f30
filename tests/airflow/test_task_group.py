"""MapReduceOperator's shape in a DAG: the tasks it expands into, >>, nesting, map-only,
and precise errors at DAG-parse time."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, TaskGroup

from airflow_mapreduce import MapReduceOperator
from airflow_mapreduce.errors import JobSpecError

JOB = {
    "input": "s3://b/in/",
    "mapper": "jobs:mapper",
    "reducer": "jobs:reducer",
    "reducers": 2,
    "output": "s3://b/out/",
}


def test_the_operator_slots_between_other_tasks() -> None:
    with DAG("pipeline", schedule=None) as dag:
        counting = MapReduceOperator(task_id="counting", **JOB)
        EmptyOperator(task_id="extract") >> counting >> EmptyOperator(task_id="load")
    order = [t.task_id for t in dag.topological_sort()]
    assert order == [
        "extract", "counting.plan", "counting.map", "counting.shuffle",
        "counting.reduce", "counting.commit", "load",
    ]  # fmt: skip
    plan = dag.get_task("counting.plan")
    assert plan.input_uris == ["s3://b/in/"] and plan.job_name == "counting"
    # The shuffle also reads the plan's URI from XCom, hence both upstreams.
    assert dag.get_task("counting.shuffle").upstream_task_ids == {"counting.map", "counting.plan"}
    assert counting.output.operator is dag.get_task("counting.commit")


def test_map_only_job_nested_in_a_group() -> None:
    with DAG("maponly", schedule=None) as dag, TaskGroup("etl"):
        MapReduceOperator(task_id="wc", **{**JOB, "reducer": None, "reducers": 0})
    assert [t.task_id for t in dag.topological_sort()] == [
        "etl.wc.plan", "etl.wc.map", "etl.wc.commit",
    ]  # fmt: skip


def mapper(line: str):  # type: ignore[no-untyped-def]
    yield line, 1


def test_steps_as_argv_strings_and_functions() -> None:
    with DAG("shapes", schedule=None):
        op = MapReduceOperator(
            task_id="wc", input="in/", output="out/", mapper=mapper,
            reducer=["python3", "reducer.py"], reducers=1,
        )  # fmt: skip
    assert op.job.mapper.callable == f"{__name__}:mapper"
    assert op.job.reducer is not None and op.job.reducer.command == ["python3", "reducer.py"]
    # Relative paths are taken from the folder of the file that creates the operator.
    assert op.job.input.uri == f"file://{__file__.rsplit('/', 1)[0]}/in/"


def test_a_nested_function_is_refused_workers_import_by_name() -> None:
    def local_mapper(line: str):  # type: ignore[no-untyped-def]
        yield line, 1

    with (
        DAG("nested", schedule=None),
        pytest.raises(JobSpecError, match=r"package\.module:function"),
    ):
        MapReduceOperator(task_id="wc", **{**JOB, "mapper": local_mapper})


def test_a_bad_field_fails_at_parse_time_naming_it() -> None:
    with DAG("bad", schedule=None), pytest.raises(JobSpecError) as info:
        MapReduceOperator(task_id="wc", **{**JOB, "reducers": "two", "mapper": ["python3", ""]})
    message = str(info.value)
    assert f"{__file__}:" in message and "MapReduceOperator(task_id='wc')" in message
    assert "reducers: expected an integer" in message
    assert "mapper.command.1: empty argument" in message


def test_no_secret_in_a_parse_time_error() -> None:
    with DAG("secret", schedule=None), pytest.raises(JobSpecError) as info:
        MapReduceOperator(task_id="wc", **{**JOB, "output": "s3://AKIAXX:Zq9-secret-Zq9@b/o"})
    assert "Zq9" not in str(info.value) and "AKIAXX" not in str(info.value)


def test_a_job_file_is_taken_from_the_dag_files_folder_and_overridden() -> None:
    dags = Path(__file__).resolve().parents[2] / "dags"
    with DAG("from_file", schedule=None) as dag:
        op = MapReduceOperator(task_id="wc", job_file="../../dags/wordcount.yaml", reducers=5)
    assert op.job.input.uri == f"file://{dags}/data/wordcount"
    assert op.job.reducers == 5
    assert dag.get_task("wc.plan").job_dir == str(dags)  # its paths, and conf's, from there
