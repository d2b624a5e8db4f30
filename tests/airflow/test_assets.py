"""Data-aware scheduling: the commit's asset event for the output a run really wrote, a job
YAML's asset schedule as the DAG's, and its rules with file:line:col."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import DAG, Asset, AssetAlias, AssetAll, AssetAny
from airflow.sdk.definitions.timetables.assets import AssetTriggeredTimetable

from airflow_mapreduce.airflow.factory import build_dag
from airflow_mapreduce.airflow.links import manifest_link
from airflow_mapreduce.errors import JobSpecError
from airflow_mapreduce.job import load_job_file
from airflow_mapreduce.operators.mapreduce import MapReduceOperator
from tests.wordcount import output_counts, read_parts

REPO = Path(__file__).resolve().parents[2]

JOB = """\
dag_id: downstream
input: {uri: data/in}
mapper: {command: [cat]}
reducers: 0
output: out/
"""


def job_file(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(JOB + textwrap.dedent(extra))
    return path


def asset_events(dag_id: str, run_id: str) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        events = session.query(AssetEvent).filter_by(source_dag_id=dag_id, source_run_id=run_id)
        return [
            {
                "name": event.asset.name,
                "uri": event.asset.uri,
                "aliases": sorted(alias.name for alias in event.asset.aliases),
                "task_id": event.source_task_id,
                "extra": event.extra,
            }
            for event in events
        ]


def xcom(dag_id: str, run_id: str, task_id: str, key: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id, key=key)
            .one()
        )
        return row.value


@pytest.mark.integration
@pytest.mark.slow
def test_the_commit_emits_an_asset_event_for_the_rendered_output(airflow_db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    dag = DagBag(str(REPO / "dags")).get_dag("wordcount")
    conf = {"output": f"file://{tmp_path}/counts/{{{{ ds_nodash }}}}/", "parallelism": 1}
    run = dag.test(run_conf=conf)
    assert run.state == "success"
    output = tmp_path / "counts" / run.logical_date.strftime("%Y%m%d")
    manifest_uri = f"file://{output}/_manifest.json"
    parts = read_parts(output)

    # The asset of the output this run wrote, keyed as Asset("<output URI>") keys it: its
    # name is the URI as written, its uri Airflow's normalised form (no trailing '/').
    [event] = asset_events("wordcount", run.run_id)
    assert event == {
        "name": f"file://{output}/",
        "uri": f"file://{output}",
        "aliases": ["mapreduce:wordcount"],
        "task_id": "commit",
        "extra": {
            "output": f"file://{output}/",
            "manifest": manifest_uri,
            "input": f"file://{REPO}/dags/data/wordcount",
            "records": len(output_counts(output)),
            "bytes": sum(len(data) for data in parts.values()),
            "parts": len(parts),
        },
    }
    assert Asset(f"file://{output}/").uri == event["uri"]  # what a downstream DAG writes

    # The extra link, computed by the worker after the commit and kept in XCom.
    assert xcom("wordcount", run.run_id, "commit", "return_value") == manifest_uri
    assert xcom("wordcount", run.run_id, "commit", "_link_OutputManifestLink") == manifest_uri


def test_commit_outlets_name_the_jobs_alias(tmp_path: Path) -> None:
    yaml_dag = build_dag(load_job_file(REPO / "dags" / "wordcount.yaml"), job_dir=str(REPO))
    assert yaml_dag.get_task("commit").outlets == [AssetAlias("mapreduce:wordcount")]
    with DAG("etl", schedule=None) as dag:
        MapReduceOperator(task_id="wc", job_file=REPO / "dags" / "wordcount.yaml")
        MapReduceOperator(task_id="top", job_file=REPO / "dags" / "wordcount.yaml")
    assert dag.get_task("wc.commit").outlets == [AssetAlias("mapreduce:etl.wc")]
    assert dag.get_task("top.commit").outlets == [AssetAlias("mapreduce:etl.top")]
    assert [link.name for link in dag.get_task("wc.commit").operator_extra_links] == [
        "Output manifest"
    ]


def test_an_asset_schedule_becomes_the_dags_schedule(tmp_path: Path) -> None:
    path = job_file(
        tmp_path,
        """\
        schedule:                        # no start_date: assets have no intervals
          - s3://landing/events/
          - any:
              - data/users/              # next to the job file, as input and output
              - alias: mapreduce:wordcount
        """,
    )
    job = load_job_file(path)
    assert job.start_date is None
    dag = build_dag(job, job_dir=str(tmp_path))
    assert isinstance(dag.timetable, AssetTriggeredTimetable)
    assert dag.timetable.asset_condition == AssetAll(
        Asset("s3://landing/events/"),
        AssetAny(Asset(f"file://{tmp_path}/data/users/"), AssetAlias("mapreduce:wordcount")),
    )
    # The scheduler's copy: what decides when a run starts.
    from airflow.serialization.serialized_objects import DagSerialization

    scheduled = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    assert [key.uri for key, _ in scheduled.timetable.asset_condition.iter_assets()] == [
        "s3://landing/events",
        f"file://{tmp_path}/data/users",
    ]
    assert [name for name, _ in scheduled.timetable.asset_condition.iter_asset_aliases()] == [
        "mapreduce:wordcount"
    ]


@pytest.mark.parametrize(
    ("schedule", "asset"),
    [
        ("{all: [s3://a/b/, s3://c/d/]}", AssetAll(Asset("s3://a/b/"), Asset("s3://c/d/"))),
        ("{any: [s3://a/b/, s3://c/d/]}", AssetAny(Asset("s3://a/b/"), Asset("s3://c/d/"))),
        ("{alias: 'mapreduce:wordcount'}", AssetAlias("mapreduce:wordcount")),
        ("['memory:///x/']", AssetAll(Asset("memory:///x/"))),
    ],
)
def test_asset_schedule_shapes(tmp_path: Path, schedule: str, asset: Any) -> None:
    dag = build_dag(load_job_file(job_file(tmp_path, f"schedule: {schedule}\n")))
    assert dag.timetable.asset_condition == asset


def test_the_example_downstream_job_waits_for_the_folder_it_reads() -> None:
    dag = DagBag(str(REPO / "dags")).dags["wordcount_frequencies"]
    latest = "s3://mapreduce-examples/wordcount/latest/"
    assert dag.timetable.asset_condition == AssetAll(Asset(latest))
    assert dag.params["input"] == latest


def test_time_schedules_still_need_a_start_date_and_assets_cannot_catch_up(
    tmp_path: Path,
) -> None:
    with pytest.raises(JobSpecError) as info:
        load_job_file(job_file(tmp_path, "schedule: '@daily'\n"))
    assert f"{tmp_path}/job.yaml:6:1: schedule: schedule '@daily' needs a start_date" in str(
        info.value
    )
    with pytest.raises(JobSpecError) as info:
        load_job_file(job_file(tmp_path, "schedule: [s3://a/b/]\ncatchup: true\n"))
    assert (
        f"{tmp_path}/job.yaml:7:1: catchup: catchup needs a cron or preset schedule: an asset "
        "schedule has no intervals to catch up" in str(info.value)
    )
    timed = load_job_file(job_file(tmp_path, "schedule: '0 3 * * *'\nstart_date: 2024-01-01\n"))
    assert timed.schedule == "0 3 * * *" and timed.start_date == dt.date(2024, 1, 1)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (
            "  - s3://ok/events/\n  - ftp://host/x/\n",
            "8:5: schedule.1: unsupported scheme 'ftp' in 'ftp://host/x/'; use file://, s3://, "
            "memory:// or a plain path",
        ),
        (
            "  - s3://key:hunter2@bucket/x/\n",
            "7:5: schedule.0: this asset URI holds credentials (user@ or user:password@); put "
            "credentials in an Airflow connection",
        ),
        ("  - s3://\n", "7:5: schedule.0: 's3://' names no bucket; write s3://bucket/prefix/"),
        ("  - ../up/\n", "7:5: schedule.0: '..' is not allowed in '../up/'"),
        (
            "  - any:\n      - s3://ok/a/\n      - 's3://ok/{{ ds }}/'\n",
            "9:9: schedule.0.any.1: an asset URI cannot hold a template, found "
            "'s3://ok/{{ ds }}/': a schedule is read before any run",
        ),
        ("  - data/*.csv\n", "7:5: schedule.0: an asset is one folder or object, not a glob"),
        ("  - 5\n", "7:5: schedule.0: expected an asset URI such as s3://landing/events/"),
        ("  - {anyy: [s3://a/b/]}\n", "7:5: schedule.0: expected one key of any: [...]"),
        ("  - any: s3://a/b/\n", "7:5: schedule.0.any: expected a list of asset URIs, found str"),
        ("  - alias: ''\n", "7:5: schedule.0.alias: expected an asset alias name of 1 to 1500"),
        ("  []\n", "6:1: schedule: expected at least one asset URI"),
        (" s3://landing/events/\n", "6:1: schedule: 's3://landing/events/' is not a cron "),
    ],
)
def test_bad_asset_schedules_fail_with_file_line_and_fix(
    tmp_path: Path, schedule: str, expected: str
) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(JOB + "schedule:" + ("\n" if schedule.startswith("  ") else "") + schedule)
    with pytest.raises(JobSpecError) as info:
        load_job_file(path)
    [problem] = info.value.problems
    assert problem.startswith(f"{path}:{expected}"), problem
    assert "hunter2" not in problem


def test_the_manifest_link_opens_the_s3_console_or_the_file() -> None:
    assert manifest_link("s3://reports/wc/2024 01/_manifest.json") == (
        "https://s3.console.aws.amazon.com/s3/object/reports?prefix=wc/2024%2001/_manifest.json"
    )
    assert manifest_link("file:///tmp/out/_manifest.json") == "file:///tmp/out/_manifest.json"
