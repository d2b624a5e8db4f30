"""One conformance suite, run against both real servers (Redis and NATS JetStream)."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator

import pytest

from airflow_mapreduce.queue import QueuePolicy, WorkQueue, open_queue

FAST = QueuePolicy(
    max_attempts=3, backoff_seconds=0.2, max_backoff_seconds=1, visibility_timeout_seconds=1
)


@pytest.fixture
def queue(queue_server) -> Iterator[WorkQueue]:  # type: ignore[no-untyped-def]
    q = open_queue(queue_server.url, f"t-{uuid.uuid4().hex[:10]}")
    try:
        yield q
    finally:
        q.purge()
        q.close()


def drain(queue: WorkQueue, deadline: float = 15.0) -> list[str]:
    """Take and ack until the queue is finished; the items in delivery order."""
    seen: list[str] = []
    end = time.monotonic() + deadline
    while not queue.progress().finished:
        assert time.monotonic() < end, f"queue not finished: {queue.progress()}"
        for d in queue.take(10, wait=0.2):
            seen.append(d.item)
            assert queue.ack(d)
    return seen


def test_enqueue_is_idempotent_and_every_item_is_delivered_once(queue: WorkQueue) -> None:
    items = [f"file:///work/map/{i:05d}/spec.json" for i in range(50)]
    assert queue.enqueue(items, FAST) == 50
    assert queue.enqueue([*items[:20], "extra"], FAST) == 1  # a retried enqueue adds nothing
    assert sorted(drain(queue)) == sorted([*items, "extra"])
    p = queue.progress()
    assert (p.total, p.done, p.in_flight, p.queued, p.dead) == (51, 51, 0, 0, 0)


def test_nack_retries_with_backoff_then_dead_letters_with_the_error(queue: WorkQueue) -> None:
    queue.enqueue(["poison", "fine"], FAST)
    attempts: list[tuple[int, float]] = []
    end = time.monotonic() + 15
    while not queue.progress().finished:
        assert time.monotonic() < end
        for d in queue.take(1, wait=0.2):
            if d.item == "fine":
                assert queue.ack(d)
            else:
                attempts.append((d.attempt, time.monotonic()))
                assert queue.nack(d, f"ValueError: bad record on attempt {d.attempt}")
    assert [a for a, _ in attempts] == [1, 2, 3]
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.15 and gaps[1] >= 0.35, gaps  # 0.2 s, then 0.4 s of backoff
    [dead] = queue.dead_letters()
    assert (dead.item, dead.attempts) == ("poison", 3)
    assert dead.error == "ValueError: bad record on attempt 3"
    p = queue.progress()
    assert (p.done, p.dead) == (1, 1)


def test_unacked_item_comes_back_after_the_visibility_timeout(queue: WorkQueue) -> None:
    queue.enqueue(["a"], FAST)
    [_first] = queue.take(1, wait=1)
    assert queue.take(1, wait=0.3) == []  # invisible while leased
    time.sleep(1.2)  # the worker "died": no ack, no heartbeat
    [again] = queue.take(1, wait=2)
    assert (again.item, again.attempt) == ("a", 2)
    assert queue.ack(again)
    assert queue.progress().finished


def test_heartbeat_keeps_a_long_task_invisible(queue: WorkQueue) -> None:
    queue.enqueue(["slow"], FAST)
    [d] = queue.take(1, wait=1)
    for _ in range(4):  # 2 s in all, twice the visibility timeout
        time.sleep(0.5)
        assert queue.extend(d)
        assert queue.take(1, wait=0) == []
    assert queue.ack(d)
    assert queue.progress().finished


def test_an_item_whose_workers_keep_dying_is_dead_lettered(queue: WorkQueue) -> None:
    policy = QueuePolicy(max_attempts=2, visibility_timeout_seconds=0.5)
    queue.enqueue(["crashes-worker"], policy)
    for attempt in (1, 2):
        [d] = queue.take(1, wait=2)
        assert d.attempt == attempt
        time.sleep(0.7)
    assert queue.take(1, wait=1) == []
    [dead] = queue.dead_letters()
    assert dead.item == "crashes-worker" and dead.attempts == 2
    assert "visibility timeout" in dead.error
    assert queue.progress().finished


def test_purge_removes_the_run_state(queue: WorkQueue) -> None:
    queue.enqueue(["x", "y"], FAST)
    queue.purge()
    assert queue.progress().total == 0


def test_a_wrong_redis_password_fails_at_once(redis_with_password) -> None:  # type: ignore[no-untyped-def]
    """Refused credentials are not retried like a restarting server (test_chaos.py): one
    connection attempt (the server's own count), then a QueueError that says what to fix."""
    import redis

    from airflow_mapreduce.queue import QueueError

    admin = redis.Redis.from_url(redis_with_password.url)

    def connections() -> int:
        return int(admin.info("stats")["total_connections_received"])

    wrong = redis_with_password.url.replace(redis_with_password.password, "wrong-password")
    queue = open_queue(wrong, f"t-{uuid.uuid4().hex[:10]}")
    before = connections()
    with pytest.raises(QueueError, match="refused the queue URL's credentials"):
        queue.progress()
    assert connections() - before == 1  # (admin reuses its pooled connection)
    queue.close()
    admin.close()
