"""The periodic (CronJob) use case: a scheduled job backfills several days, each run
reading its own day's prefix through Jinja in the YAML's input URI."""

from __future__ import annotations

import collections
import datetime as dt
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from tests.wordcount import output_counts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAGS = Path(__file__).resolve().parents[2] / "dags"


def day_counts(day: str) -> collections.Counter[str]:
    """Reference: the words of that day's files, counted with str.split()."""
    counts: collections.Counter[str] = collections.Counter()
    for path in sorted((DAGS / "data" / "daily" / day).iterdir()):
        counts.update(path.read_text().split())
    return counts


def test_catchup_backfills_each_day_from_its_own_prefix(airflow_db, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "300")  # busy 2-core machines
    from airflow.serialization.serialized_objects import DagSerialization

    dag = DagBag(str(DAGS)).get_dag("wordcount_nightly")
    assert dag is not None and dag.catchup
    # The runs the scheduler creates for catchup, from the DAG's own (serialized) timetable.
    scheduled = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    infos = list(scheduled.iter_dagrun_infos_between(None, dag.end_date))
    days = [info.logical_date.date() for info in infos]
    assert days == [dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2024, 1, 3)]

    # The output is overridden by conf, itself a template; the input keeps the YAML's.
    conf = {"output": f"file://{tmp_path}/{{{{ data_interval_start | ds_nodash }}}}/"}
    runs = {}
    for info in infos:
        run = dag.test(logical_date=info.logical_date, run_conf=conf)
        assert run.state == "success"
        runs[info.logical_date.date()] = run.run_id
    for day in days:
        output = tmp_path / day.strftime("%Y%m%d")
        assert (output / "_SUCCESS").exists()
        assert output_counts(output) == day_counts(day.isoformat())
    assert day_counts("2024-01-01") != day_counts("2024-01-02")  # the days really differ

    # Mapped tasks are labelled with what they read (map_index_template).
    for day, run_id in runs.items():
        files = sorted((DAGS / "data" / "daily" / day.isoformat()).iterdir())
        labels = rendered_map_indexes("wordcount_nightly", run_id)
        # A day's few bytes fit one map task (about split_size bytes each): the label
        # names its first split and how many more it reads.
        [label] = labels["map"]
        first = files[0]
        more = f" +{len(files) - 1} more" if len(files) > 1 else ""
        assert label.split(": ", 1)[1] == f"{first.name}[0:{first.stat().st_size}B]{more}"
        assert all(label.startswith("split ") for label in labels["map"])
        assert sorted(labels["reduce"]) == ["partition 0", "partition 1"]


def rendered_map_indexes(dag_id: str, run_id: str) -> dict[str, list[str]]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    labels: dict[str, list[str]] = collections.defaultdict(list)
    with create_session() as session:
        for ti in session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id):
            if ti.map_index >= 0:
                labels[ti.task_id].append(ti.rendered_map_index)
    return labels
