"""`dag.test()` of the example DAGs end to end on the local backend (embedded default)."""

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


def mapped_task_count(dag_id: str, run_id: str, task_id: str) -> int:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        return (
            session.query(TaskInstance)
            .filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id, state="success")
            .count()
        )


@pytest.mark.parametrize("dag_id", ["wordcount", "wordcount_python", "wordcount_reduce_by"])
def test_word_count_dag_matches_counter(airflow_db, word_corpus, tmp_path, capfd, dag_id) -> None:  # type: ignore[no-untyped-def]
    dag = DagBag(str(REPO / "dags")).get_dag(dag_id)
    output = tmp_path / "out"
    conf = {"input": f"file://{word_corpus.folder}", "output": f"file://{output}"}
    run = dag.test(run_conf=conf)
    assert run.state == "success"
    assert output_counts(output) == word_corpus.counts
    assert sorted(p.name for p in output.iterdir()) == [
        "_SUCCESS", "_job_history.json", "_manifest.json", "part-00000", "part-00001", "part-00002",
    ]  # fmt: skip
    assert mapped_task_count(dag_id, run.run_id, "map") >= 4
    assert mapped_task_count(dag_id, run.run_id, "reduce") == 3
    # Peak memory per phase, for sizing pods: in _manifest.json and the commit's log.
    peaks = json.loads((output / "_manifest.json").read_text())["peak_memory"]
    assert sorted(peaks) == ["map", "reduce"]
    for phase in peaks.values():
        assert phase["worker_bytes"] > 0
        # streaming commands (wordcount) or Python steps only (the others)
        assert (phase["commands_bytes"] > 0) == (dag_id == "wordcount")
    logged = capfd.readouterr()
    assert "peak memory of map tasks: up to" in logged.out + logged.err


def test_the_top_words_dag_runs_both_steps_in_one_run(airflow_db, word_corpus, tmp_path) -> None:  # type: ignore[no-untyped-def]
    dag = DagBag(str(REPO / "dags")).get_dag("top_words")
    output = tmp_path / "top"
    run = dag.test(run_conf={"input": f"file://{word_corpus.folder}", "output": str(output)})
    assert run.state == "success"
    assert (output / "part-00000").read_text().splitlines() == top_words(word_corpus.folder)
    assert mapped_task_count("top_words", run.run_id, "step_1.map") >= 4
    assert mapped_task_count("top_words", run.run_id, "step_1.reduce") == 3
    assert mapped_task_count("top_words", run.run_id, "step_2.reduce") == 1
    assert not (output / "_temporary").exists()
    # The MapReduce tab: a job per step, the last one committed, the first done.
    from airflow_mapreduce.airflow.ui.run_view import run_view

    first, second = run_view("top_words", run.run_id).jobs
    assert (first.name, first.state, second.name, second.state) == (
        "step_1",
        "success",
        "step_2",
        "success",
    )
    assert [s.name for s in first.steps] == ["plan", "map", "shuffle", "reduce"]
    assert "next step's input" in first.problems[0]
    assert second.output is not None and second.output.committed
    assert second.output.records == 10 and not second.problems


def test_the_join_dag_takes_a_param_per_input(airflow_db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    users, events = write_users_and_events(tmp_path / "data")
    dag = DagBag(str(REPO / "dags")).get_dag("events_by_country")
    assert {"input_users", "input_events"} <= set(dag.params) and "input" not in dag.params
    output = tmp_path / "joined"
    conf = {"input_users": str(users), "input_events": f"file://{events}", "output": str(output)}
    run = dag.test(run_conf=conf)
    assert run.state == "success"
    assert output_lines(output) == events_by_country(users, events)
