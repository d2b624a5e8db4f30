"""The work-queue connection types and the deferred map phase in a real Airflow (`airflow
standalone`, the session's): the Connections form's metadata lists both types with their
fields; a mapreduce_redis connection created over REST is what the hook builds its URL
from and what a `local_pool` run (dags/wordcount_queue.yaml) uses, its map phase DEFERRED
in the triggerer while local workers pull the map tasks, the triggerer's progress lines
in the task's log, and the output equal to an independent Counter."""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_mapreduce.hooks.work_queue import WorkQueueHook
from airflow_mapreduce.queue import open_queue, queue_name
from tests.airflow.standalone import Airflow
from tests.conftest import Corpus
from tests.servers import QueueServer
from tests.wordcount import output_counts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAG_ID = "wordcount_queue"
CONN_ID = "mapreduce_queue"  # the job's queue.conn_id
DB = 3  # not Redis' default database: the connection's extra must reach every part


def test_the_connections_form_offers_both_queue_types(airflow: Airflow) -> None:
    meta = airflow.client.get("/ui/connections/hook_meta")
    assert meta.status_code == 200, meta.text
    types = {m["connection_type"]: m for m in meta.json()}
    redis, nats = types["mapreduce_redis"], types["mapreduce_nats"]
    assert redis["hook_class_name"] == "airflow_mapreduce.hooks.work_queue.RedisQueueHook"
    assert redis["hook_name"] == "MapReduce work queue (Redis)"
    fields = redis["extra_fields"]
    assert set(fields) == {"db", "ssl", "ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile",
                           "ssl_keyfile"}  # fmt: skip
    assert fields["db"]["schema"]["type"] == ["integer", "null"] and fields["db"]["value"] == 0
    assert fields["ssl"]["schema"] == {"type": ["boolean", "null"], "default": False,
                                       "title": "TLS (rediss://)"}  # fmt: skip
    assert redis["standard_fields"]["url_schema"]["hidden"] is True
    assert redis["standard_fields"]["port"]["placeholder"] == "6379"
    assert nats["hook_name"] == "MapReduce work queue (NATS JetStream)"
    assert set(nats["extra_fields"]) == {"tls"}
    assert nats["standard_fields"]["password"]["title"] == "Password, or token without a user"


def test_a_local_pool_map_phase_waits_deferred_with_a_connection_made_over_rest(  # type: ignore[no-untyped-def]
    airflow: Airflow, redis_with_password: QueueServer, word_corpus: Corpus, tmp_path: Path,
    monkeypatch,
) -> None:  # fmt: skip
    client = airflow.client
    password = str(redis_with_password.password)
    fields: dict[str, Any] = {
        "conn_type": "mapreduce_redis",
        "host": "127.0.0.1",
        "port": redis_with_password.port,
        "password": password,
        "extra": json.dumps({"db": DB}),
    }
    client.delete(f"/api/v2/connections/{CONN_ID}")  # (an earlier run of this session's)
    created = client.post("/api/v2/connections", json={"connection_id": CONN_ID, **fields})
    assert created.status_code == 201, created.text
    stored = client.get(f"/api/v2/connections/{CONN_ID}").json()
    assert (stored["conn_type"], stored["port"], json.loads(stored["extra"])) == (
        "mapreduce_redis", redis_with_password.port, {"db": DB},
    )  # fmt: skip
    # The hook, given the same fields (in this process: from an env var), builds the URL.
    monkeypatch.setenv("AIRFLOW_CONN_QUEUE_FROM_REST", json.dumps({**fields, "extra": {"db": DB}}))
    url = WorkQueueHook("queue_from_rest").get_url()
    assert url == f"redis://:{password}@127.0.0.1:{redis_with_password.port}/{DB}"

    airflow.unpause(DAG_ID)
    output = tmp_path / "out"
    response = airflow.trigger(
        DAG_ID, {"input": f"file://{word_corpus.folder}", "output": f"file://{output}"}
    )
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]

    # Poll the map phase's task instance: DEFERRED while the workers pull, with the run's
    # queue on the connection's database meanwhile.
    states: list[str] = []
    queued_while_deferred: list[int] = []
    ti_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/run_map_queue"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        state = client.get(ti_path).json()["state"]
        if not states or states[-1] != state:
            states.append(state)
        if state == "deferred" and not queued_while_deferred:
            queue = open_queue(url, queue_name(DAG_ID, run_id))
            queued_while_deferred.append(queue.progress().total)
            queue.close()
        if state in ("success", "failed", "upstream_failed"):
            break
        time.sleep(0.2)
    assert "deferred" in states, states
    assert states[-1] == "success", (states, airflow.log.read_text()[-3000:])
    assert queued_while_deferred[0] > 1

    assert airflow.wait_for_run(DAG_ID, run_id, timeout=600) == "success"
    assert output_counts(output) == collections.Counter(word_corpus.counts)

    # The triggerer's progress lines are part of the task's log, beside the task's own.
    # One try only: a failed first try would be a bug (its whole log is in the message).
    tries = client.get(ti_path).json()["try_number"]
    log = client.get(f"{ti_path}/logs/1", headers={"Accept": "application/json"})
    assert log.status_code == 200, log.text
    text = json.dumps(log.json())
    assert tries == 1, (states, text)
    name = queue_name(DAG_ID, run_id)
    total = queued_while_deferred[0]
    assert "Pausing task as DEFERRED" in text
    assert f"map queue {name}: {total}/{total} done (100.0%)" in text  # from the triggerer
    assert f"Map queue {name} finished: {total}/{total} done" in text  # execute_complete
    assert password not in text
    # Done, the run's queue state is gone.
    queue = open_queue(url, name)
    assert queue.progress().total == 0
    queue.close()
