"""A real Airflow (`airflow standalone`: api-server, scheduler, dag-processor, triggerer)
on 127.0.0.1: token, unpause, trigger the example DAG over REST with conf, poll to success.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

import httpx
import pytest

from tests.airflow.standalone import Airflow
from tests.wordcount import output_counts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAG_ID = "wordcount"


def _trigger(airflow: Airflow, conf: dict[str, object]) -> httpx.Response:
    return airflow.trigger(DAG_ID, conf)


def test_trigger_with_conf_over_rest_runs_to_success(airflow: Airflow, tmp_path: Path) -> None:
    client = airflow.client
    corpus = tmp_path / "in"
    corpus.mkdir()
    texts = ["one fish two fish\nred fish blue fish\n", "the cat in the hat\n" * 50, "fish\n"]
    for index, text in enumerate(texts):
        (corpus / f"part-{index}.txt").write_text(text)
    expected = collections.Counter("".join(texts).split())
    output = tmp_path / "out"

    patched = client.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
    assert patched.is_success and patched.json()["is_paused"] is False

    # The Trigger DAG form's params carry the YAML's rules: bad overrides never start a run.
    for bad in ({"reducers": 0}, {"input": "http://example.com/x"}, {"output": "../escape"}):
        rejected = _trigger(airflow, {"input": f"file://{corpus}", **bad})
        assert rejected.status_code == 400, (bad, rejected.text)

    # Three input files would give three map tasks; parallelism 1 from conf makes one.
    conf = {
        "input": f"file://{corpus}",
        "output": f"file://{output}",
        "reducers": 2,
        "parallelism": 1,
    }
    response = _trigger(airflow, conf)
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    deadline = time.monotonic() + 300
    state = "queued"
    while time.monotonic() < deadline and state not in ("success", "failed"):
        time.sleep(1)
        try:
            state = client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}").json()["state"]
        except httpx.TimeoutException:
            continue
    assert state == "success"

    assert output_counts(output) == expected
    assert sorted(p.name for p in output.glob("part-*")) == ["part-00000", "part-00001"]

    tis = client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances").json()
    maps = [ti for ti in tis["task_instances"] if ti["task_id"] == "map"]
    assert len(maps) == 1
    assert maps[0]["rendered_map_index"] == "split 0: part-0.txt[0:37B] +2 more"
    reduces = [ti for ti in tis["task_instances"] if ti["task_id"] == "reduce"]
    assert sorted(ti["rendered_map_index"] for ti in reduces) == ["partition 0", "partition 1"]
