"""The periodic (CronJob) use case: a scheduled job backfills several days, each run
reading its own day's prefix through Jinja in the YAML's input URI."""

from __future__ import annotations

import collections
import datetime as dt
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAGS = Path(__file__).resolve().parents[2] / "dags"


def day_counts(day: str) -> collections.Counter[str]:
    """Reference: the words of that day's files, counted with str.split()."""
    counts: collections.Counter[str] = collections.Counter()
    for path in sorted((DAGS / "data" / "daily" / day).iterdir()):
        counts.update(path.read_text().split())
    return counts


def output_counts(folder: Path) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for part in sorted(folder.glob("part-*")):
        for line in part.read_text().splitlines():
            word, count = line.split("\t")
            counts[word] += int(count)
    return counts


def test_catchup_backfills_each_day_from_its_own_prefix(airflow_db, tmp_path) -> None:  # type: ignore[no-untyped-def]
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
    for info in infos:
        run = dag.test(logical_date=info.logical_date, run_conf=conf)
        assert run.state == "success"
    for day in days:
        output = tmp_path / day.strftime("%Y%m%d")
        assert (output / "_SUCCESS").exists()
        assert output_counts(output) == day_counts(day.isoformat())
    assert day_counts("2024-01-01") != day_counts("2024-01-02")  # the days really differ
