"""What `airflow providers ...` (the real CLI, as a subprocess) says of this provider: the
operator, hooks, triggers, connection types and the extra link."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

AIRFLOW = str(Path(sys.executable).parent / "airflow")


def providers(*args: str) -> Any:
    done = subprocess.run(
        [AIRFLOW, "providers", *args, "-o", "json"],
        capture_output=True, text=True, timeout=180, check=True, env=dict(os.environ),
    )  # fmt: skip
    return json.loads(done.stdout)


@pytest.mark.integration
def test_airflow_lists_the_provider_with_all_it_offers(airflow_db) -> None:  # type: ignore[no-untyped-def]
    [info] = providers("get", "airflow-mapreduce", "--full")
    modules = [m for entry in info["operators"] for m in entry["python-modules"]]
    assert "airflow_mapreduce.operators.mapreduce" in modules
    hooks = {h["connection_type"]: h["class"] for h in providers("hooks")}
    assert hooks["mapreduce_redis"] == "airflow_mapreduce.hooks.work_queue.RedisQueueHook"
    assert hooks["mapreduce_nats"] == "airflow_mapreduce.hooks.work_queue.NatsQueueHook"
    triggers = json.dumps(providers("triggers"))
    assert "airflow_mapreduce.triggers.work_queue" in triggers
    links = json.dumps(providers("links"))
    assert "airflow_mapreduce.airflow.links.OutputManifestLink" in links
    # The operator the provider names is the one users import.
    from airflow_mapreduce import MapReduceOperator
    from airflow_mapreduce.operators.mapreduce import MapReduceOperator as listed

    assert MapReduceOperator is listed
