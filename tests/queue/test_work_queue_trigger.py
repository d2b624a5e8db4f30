"""The work-queue triggers on real Redis and NATS servers: serializable without secrets,
fired once the queue is finished, failed when the workers are gone or the queue's state
was deleted, and the queue purged when the user kills the deferred task."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from airflow.sdk.module_loading import import_string

from airflow_mapreduce.queue import Progress, QueuePolicy, open_queue
from airflow_mapreduce.triggers.work_queue import (
    IndexedJobProgressTrigger,
    LocalPoolProgressTrigger,
    WorkQueueProgressTrigger,
    first_event,
    local_processes,
)
from tests.servers import QueueServer

pytestmark = pytest.mark.integration

POLICY = QueuePolicy(max_attempts=1, visibility_timeout_seconds=30)
QUICK = {"progress_interval": 0.2, "poll_interval": 0.05}


@pytest.fixture
def conn_id(monkeypatch: pytest.MonkeyPatch, queue_server: QueueServer) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_MAPREDUCE_QUEUE", queue_server.airflow_conn_json())
    return "mapreduce_queue"


def _run(trigger: WorkQueueProgressTrigger, timeout: float = 60) -> dict[str, Any]:
    return asyncio.run(asyncio.wait_for(first_event(trigger), timeout))


def _queue(server: QueueServer, items: list[str]) -> Any:
    name = f"trig-{time.monotonic_ns()}"
    queue = open_queue(server.url, name)
    queue.enqueue(items, POLICY)
    return queue


def test_every_trigger_serializes_to_names_and_numbers_only(  # type: ignore[no-untyped-def]
    monkeypatch, redis_with_password: QueueServer
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MAPREDUCE_QUEUE", redis_with_password.airflow_conn_json())
    common = {"conn_id": "mapreduce_queue", "queue": "amr-x-1", **QUICK}
    triggers = [
        WorkQueueProgressTrigger(**common),
        LocalPoolProgressTrigger(**common, host="h", workers=[{"pid": 7, "create_time": 1.5}]),
        IndexedJobProgressTrigger(
            **common, job_name="mr-x-map", namespace="ns", kubernetes_conn_id="k8s",
            startup_timeout=300, created_at=1.7e9, status_interval=10.0,
        ),
    ]  # fmt: skip
    for trigger in triggers:
        classpath, kwargs = trigger.serialize()
        text = json.dumps(kwargs)  # plain JSON: what the triggerer stores
        assert redis_with_password.password not in text and "redis://" not in text
        again = import_string(classpath)(**json.loads(text))
        assert type(again) is type(trigger) and again.serialize() == (classpath, kwargs)


def test_fires_finished_once_every_item_is_done_and_logs_progress(  # type: ignore[no-untyped-def]
    conn_id, queue_server: QueueServer, capsys
) -> None:
    queue = _queue(queue_server, ["a", "b", "c"])

    def work() -> None:
        worker = open_queue(queue_server.url, queue.name)
        done = 0
        while done < 3:
            for delivery in worker.take(1, wait=1):
                time.sleep(0.2)
                if delivery.item == "b":
                    worker.nack(delivery, "b broke")  # max_attempts 1: dead-lettered
                else:
                    worker.ack(delivery)
                done += 1
        worker.close()

    thread = threading.Thread(target=work)
    thread.start()
    event = _run(WorkQueueProgressTrigger(conn_id=conn_id, queue=queue.name, **QUICK))
    thread.join()
    assert event["status"] == "finished"
    assert event["progress"] == {"total": 3, "done": 2, "in_flight": 0, "queued": 0,
                                 "retried": 0, "dead": 1}  # fmt: skip
    assert event["message"].startswith("2/3 done (66.7%), 0 in flight, 0 queued, 0 retried, 1 dead")
    lines = [line for line in capsys.readouterr().out.splitlines() if "map queue" in line]
    assert len(lines) >= 2 and f"map queue {queue.name}: {event['message']}" in lines[-1]
    queue.purge()
    queue.close()


def test_local_pool_trigger_fails_once_every_worker_exited(  # type: ignore[no-untyped-def]
    conn_id, queue_server: QueueServer
) -> None:
    queue = _queue(queue_server, ["a", "b"])
    workers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
               for _ in range(2)]  # fmt: skip
    records = local_processes(p.pid for p in workers)
    assert len(records) == 2
    trigger = LocalPoolProgressTrigger(
        conn_id=conn_id, queue=queue.name, host=socket.gethostname(),
        workers=records, **QUICK,
    )  # fmt: skip

    event = _run(trigger)  # the workers stay zombies (not reaped yet): exited all the same

    assert event["status"] == "failed"
    pids = ", ".join(str(p.pid) for p in workers)
    assert event["message"] == (
        f"all 2 local workers (pids {pids}) exited before the map queue {queue.name} "
        "finished (0/2 settled)"
    )
    assert [p.wait() for p in workers] == [0, 0]
    queue.purge()
    queue.close()


def test_workers_are_judged_on_their_own_host_only(conn_id: str) -> None:
    trigger = LocalPoolProgressTrigger(
        conn_id=conn_id, queue="q", host="elsewhere.invalid",
        workers=[{"pid": 1, "create_time": 0.0}], **QUICK,
    )  # fmt: skip
    progress = Progress(total=2, done=0, in_flight=0, queued=2, retried=0, dead=0)
    assert asyncio.run(trigger.workers_failure(progress)) is None
    # Nor is a process that only has a worker's pid (a later one: another start time).
    trigger.host = socket.gethostname()
    trigger.workers = [{"pid": os.getpid(), "create_time": 1.0}]
    assert "exited before the map queue" in str(asyncio.run(trigger.workers_failure(progress)))


def test_a_deleted_queue_state_fails_the_wait(conn_id: str, queue_server: QueueServer) -> None:
    queue = _queue(queue_server, ["a"])
    queue.purge()  # (as a newer try of the task would)

    event = _run(WorkQueueProgressTrigger(conn_id=conn_id, queue=queue.name, **QUICK))

    assert event["status"] == "failed"
    assert f"the map queue {queue.name} has no items: its state was deleted" in event["message"]
    queue.close()


def test_killing_the_deferred_task_purges_its_queue(
    conn_id: str, queue_server: QueueServer
) -> None:
    queue = _queue(queue_server, ["a", "b"])
    trigger = WorkQueueProgressTrigger(conn_id=conn_id, queue=queue.name, **QUICK)

    asyncio.run(trigger.on_kill())

    assert queue.progress().total == 0  # its workers find nothing left and exit
    queue.close()
