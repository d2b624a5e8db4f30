"""The multi-step and join example DAGs on a real Airflow (`airflow standalone`: the DAG
processor, the scheduler, the REST API), triggered with what the Trigger form sends: every
param, paths typed plainly. One run each; its tasks per step; the output against Python."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.airflow.standalone import Airflow
from tests.example_references import (
    events_by_country,
    output_lines,
    top_words,
    write_users_and_events,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def test_both_examples_over_rest(airflow: Airflow, tmp_path: Path) -> None:
    users, events = write_users_and_events(tmp_path / "data")
    text = tmp_path / "text"
    text.mkdir()
    (text / "a.txt").write_text("the cat and the dog\nThe end of the story\n" * 30)
    (text / "b.txt").write_text("a dog, a cat, a story\n" * 25)
    confs = {
        "top_words": {"input": str(text), "output": str(tmp_path / "top"), "reducers": 1,
                      "parallelism": 256},
        "events_by_country": {"input_users": str(users), "input_events": str(events),
                              "output": str(tmp_path / "joined"), "reducers": 2,
                              "parallelism": 256},
    }  # fmt: skip
    runs = {}
    for dag_id, conf in confs.items():
        airflow.unpause(dag_id)
        response = airflow.trigger(dag_id, conf)
        assert response.status_code == 200, (dag_id, response.text)
        runs[dag_id] = response.json()["dag_run_id"]
    states = {dag_id: airflow.wait_for_run(dag_id, run, 600) for dag_id, run in runs.items()}
    assert states == {"top_words": "success", "events_by_country": "success"}

    assert (tmp_path / "top" / "part-00000").read_text().splitlines() == top_words(text)
    assert output_lines(tmp_path / "joined") == events_by_country(users, events)
    tasks = {ti["task_id"] for ti in airflow.task_instances("top_words", runs["top_words"])}
    assert {"step_1.plan", "step_1.reduce", "step_2.plan", "step_2.commit"} <= tasks
    assert "commit" not in tasks  # one commit, in the last step's group
