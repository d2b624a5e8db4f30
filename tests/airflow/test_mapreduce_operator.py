"""MapReduceOperator in a Python DAG, run end to end with dag.test() on the local backend:
@task -> MapReduceOperator -> @task consuming `.output`, two jobs in one DAG run (each
with its own work folder and output lease), results equal to an independent Counter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from tests.example_references import (
    events_by_country,
    output_lines,
    top_words,
    write_users_and_events,
)
from tests.wordcount import output_counts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

DAG_FILE = """
import json
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_mapreduce import MapReduceOperator

with DAG("python_pipeline", schedule=None):

    @task
    def extract() -> str:
        return {corpus!r}

    @task
    def report(manifest_uri: str) -> None:
        manifest = json.loads(Path(manifest_uri.removeprefix("file://")).read_text())
        Path({report!r}).write_text(json.dumps(manifest))

    source = extract()
    streaming = MapReduceOperator(
        task_id="streaming",
        job_dir={dags!r},
        input="{{{{ ti.xcom_pull(task_ids='extract') }}}}",
        output={out_streaming!r},
        mapper=["python3", "mapreduce_jobs/wordcount/mapper.py"],
        reducer=["python3", "mapreduce_jobs/wordcount/reducer_current_word.py"],
        reducers=2,
    )
    callables = MapReduceOperator(
        task_id="callables",
        job_dir={dags!r},
        input={corpus!r},
        output={out_callables!r},
        mapper="mapreduce_jobs.wordcount_callables:mapper",
        reducer={{"reduce_by": "operator:add"}},
        reducers=1,
    )
    source >> [streaming, callables]
    report(streaming.output)
"""


def test_a_python_dag_runs_the_operator_and_uses_its_output(  # type: ignore[no-untyped-def]
    airflow_db, test_dags, word_corpus, tmp_path
) -> None:
    test_dags.mkdir(exist_ok=True)
    out_streaming, out_callables = tmp_path / "streaming", tmp_path / "callables"
    report = tmp_path / "report.json"
    (test_dags / "python_pipeline.py").write_text(
        DAG_FILE.format(
            corpus=str(word_corpus.folder),
            dags=str(REPO / "dags"),
            report=str(report),
            out_streaming=str(out_streaming),
            out_callables=str(out_callables),
        )
    )
    bag = DagBag(str(test_dags))
    assert not bag.import_errors, bag.import_errors
    run = bag.get_dag("python_pipeline").test()
    assert run.state == "success"

    assert output_counts(out_streaming) == word_corpus.counts
    assert output_counts(out_callables) == word_corpus.counts
    manifest = json.loads(report.read_text())  # what .output handed the downstream task
    assert manifest["output_uri"] == f"file://{out_streaming}"
    assert manifest["dag_id"] == "python_pipeline.streaming"  # the job inside the DAG
    assert manifest["records"] == len(word_corpus.counts)
    assert not (out_streaming / "_temporary").exists()


STEPS_DAG_FILE = """
from airflow.sdk import DAG

from airflow_mapreduce import MapReduceOperator

TOP = "mapreduce_jobs.top_words:"
TAG = ["python3", "mapreduce_jobs/join/tag.py"]

with DAG("python_steps_and_inputs", schedule=None):
    top = MapReduceOperator(
        task_id="top",
        job_dir={dags!r},
        input={text!r},
        output={out_top!r},
        steps=[
            {{"mapper": TOP + "mapper", "combiner": TOP + "sum_counts",
              "reducer": TOP + "sum_counts", "reducers": 2}},
            {{"mapper": TOP + "to_one_key", "reducer": TOP + "keep_top", "reducers": 1}},
        ],
    )
    joined = MapReduceOperator(
        task_id="joined",
        job_dir={dags!r},
        inputs=[{{"uri": {users!r}, "mapper": [*TAG, "0"]}},
                {{"uri": {events!r}, "mapper": [*TAG, "1"]}}],
        reducer=["python3", "mapreduce_jobs/join/reducer.py"],
        reducers=2,
        streaming={{"key_fields": 2}},
        partitioner={{"key_fields": 1}},
        comparator={{"keys": [{{"field": 1}}, {{"field": 2}}]}},
        output={out_joined!r},
    )
    top >> joined
"""


def test_the_operator_takes_steps_and_inputs(airflow_db, test_dags, word_corpus, tmp_path) -> None:  # type: ignore[no-untyped-def]
    test_dags.mkdir(exist_ok=True)
    users, events = write_users_and_events(tmp_path / "data")
    out_top, out_joined = tmp_path / "top", tmp_path / "joined"
    paths = {"dags": REPO / "dags", "text": word_corpus.folder, "users": users,
             "events": events, "out_top": out_top, "out_joined": out_joined}  # fmt: skip
    (test_dags / "python_steps.py").write_text(
        STEPS_DAG_FILE.format(**{name: str(path) for name, path in paths.items()})
    )
    bag = DagBag(str(test_dags))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag("python_steps_and_inputs")
    assert {"top.step_1.plan", "top.step_2.commit", "joined.plan", "joined.commit"} <= set(
        dag.task_ids
    )
    run = dag.test()
    assert run.state == "success"
    assert (out_top / "part-00000").read_text().splitlines() == top_words(word_corpus.folder)
    assert output_lines(out_joined) == events_by_country(users, events)
