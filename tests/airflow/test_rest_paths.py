"""Paths as users type them into the Trigger form or a REST call, on a real Airflow
(`airflow standalone`) (issue 19, items 1-3): plain, file://, relative and s3:// paths
keep every part; an output holding someone else's objects, or busy with another run, is
refused and left untouched; the lease of a finished run is taken over.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import pytest

from tests.airflow.standalone import Airflow
from tests.conftest import S3Server
from tests.wordcount import committed_names, output_counts, word_counts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "wordcount"
IDLE_DAG = "wordcount_python"  # stays paused: a run triggered on it stays queued


def text_counts(folder: Path) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for path in folder.iterdir():
        counts.update(path.read_text().split())
    return counts


def lease(dag_id: str, run_id: str) -> str:
    return json.dumps(
        {
            "dag_id": dag_id,
            "run_id": run_id,
            "runner": "airflow",
            "host": "elsewhere",
            "pid": 1,
            "taken_at": "2026-01-01T00:00:00Z",
        }
    )


def form_conf(input_uri: str, output_uri: str) -> dict[str, Any]:
    """What the Trigger form sends: every param, strings exactly as typed."""
    return {"input": input_uri, "output": output_uri, "reducers": 3, "parallelism": 256}


def test_typed_paths_over_rest(airflow: Airflow, tmp_path: Path, s3_server: S3Server) -> None:
    corpus = tmp_path / "in"
    corpus.mkdir()
    for index in range(3):
        (corpus / f"t{index}.txt").write_text(f"alpha beta {index}\ngamma alpha\n" * 40)
    expected = text_counts(corpus)
    s3 = s3_server.filesystem()
    s3.mkdir("typed-paths")
    s3.put(f"{corpus}/", "typed-paths/in/", recursive=True)

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "part-README.txt").write_text("not ours")
    busy, stale = tmp_path / "busy", tmp_path / "stale"
    busy.mkdir()
    stale.mkdir()
    airflow.unpause(DAG_ID)
    idle = airflow.trigger(IDLE_DAG, {})  # its DAG is paused: the run stays queued
    assert idle.status_code == 200, idle.text
    (busy / "_IN_PROGRESS").write_text(lease(IDLE_DAG, idle.json()["dag_run_id"]))

    confs = {
        "plain": form_conf(str(corpus), str(tmp_path / "plain")),
        "file_uri": form_conf(f"file://{corpus}", f"file://{tmp_path}/file_uri/"),
        "relative_input": form_conf("data/wordcount", str(tmp_path / "relative")),
        "s3": form_conf("s3://typed-paths/in/", "s3://typed-paths/out"),
        "foreign": form_conf(str(corpus), str(foreign)),
        "busy": form_conf(str(corpus), str(busy)),
    }
    runs = {}
    for name, conf in confs.items():
        response = airflow.trigger(DAG_ID, conf)
        assert response.status_code == 200, (name, response.text)
        runs[name] = response.json()["dag_run_id"]
    states = {name: airflow.wait_for_run(DAG_ID, run_id, 600) for name, run_id in runs.items()}

    assert {n: s for n, s in states.items() if s == "success"} == {
        "plain": "success", "file_uri": "success", "relative_input": "success", "s3": "success",
    }  # fmt: skip
    parts = committed_names(3)
    for name in ("plain", "file_uri"):
        assert sorted(p.name for p in (tmp_path / name).iterdir()) == parts
        assert output_counts(tmp_path / name) == expected
    # A relative path in conf is taken from the job file's folder, like the YAML's.
    assert output_counts(tmp_path / "relative") == text_counts(REPO / "dags/data/wordcount")
    s3.invalidate_cache()
    names = sorted(p.rsplit("/", 1)[1] for p in s3.find("typed-paths/out"))
    assert names == parts
    found = {n: s3.cat(f"typed-paths/out/{n}") for n in names if n.startswith("part-")}
    assert word_counts(found) == expected

    # Refused, and nothing touched: the foreign file, the other run's lease.
    assert states["foreign"] == "failed" and states["busy"] == "failed"
    assert sorted(p.name for p in foreign.iterdir()) == ["part-README.txt"]
    assert sorted(p.name for p in busy.iterdir()) == ["_IN_PROGRESS"]
    assert plan_log(airflow, runs["foreign"]).count("part-README.txt") >= 1
    assert f"is being written by run {idle.json()['dag_run_id']}" in plan_log(airflow, runs["busy"])

    # The lease of a finished run (the plain run's) is taken over.
    (stale / "_IN_PROGRESS").write_text(lease(DAG_ID, runs["plain"]))
    response = airflow.trigger(DAG_ID, form_conf(str(corpus), str(stale)))
    assert airflow.wait_for_run(DAG_ID, response.json()["dag_run_id"], 600) == "success"
    assert output_counts(stale) == expected
    assert not (stale / "_IN_PROGRESS").exists()


def plan_log(airflow: Airflow, run_id: str) -> str:
    """The plan task's log (its first try) as the UI's log view gets it, as one text."""
    response = airflow.client.get(
        f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/plan/logs/1",
        headers={"Accept": "application/json"},
    )
    response.raise_for_status()
    return " ".join(json.dumps(response.json()["content"]).split())
