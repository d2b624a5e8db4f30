"""MapReduceOperator in a Python DAG, run end to end with dag.test() on the local backend:
@task -> MapReduceOperator -> @task consuming `.output`, two jobs in one DAG run (each
with its own work folder and output lease), results equal to an independent Counter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

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
