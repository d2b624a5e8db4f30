"""The worker's pull loop: take an item, run it, ack; nack failures (retry or dead-letter).

A heartbeat thread extends the item's visibility timeout while it runs, so only a worker
that died or hung lets its item be handed out again.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from airflow_mapreduce.errors import MapReduceError
from airflow_mapreduce.queue.base import Delivery, QueueError, WorkQueue

log = logging.getLogger(__name__)


@dataclass
class PullStats:
    done: int = 0
    failed: int = 0
    stale_acks: int = 0


@contextmanager
def heartbeat(queue: WorkQueue, delivery: Delivery) -> Iterator[None]:
    stop = threading.Event()
    interval = max(0.2, delivery.visibility_timeout / 3)

    def beat() -> None:
        while not stop.wait(interval):
            try:
                queue.extend(delivery)
            except QueueError as exc:  # the next beat or the ack will tell if it lasts
                log.warning("heartbeat for %s failed: %s", delivery.item, exc)

    thread = threading.Thread(target=beat, name="queue-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def describe_failure(exc: BaseException) -> str:
    if isinstance(exc, MapReduceError):
        return f"{type(exc).__name__}: {exc}"  # complete by design; no traceback needed
    return "".join(traceback.format_exception(exc))[-4000:]


def pull(
    queue: WorkQueue,
    handle: Callable[[str], object],
    *,
    wait: float = 1.0,
) -> PullStats:
    """Run items until the queue is finished (every item done or dead-lettered).

    Idle workers keep waiting while others hold items: if one of those dies, its item
    comes back and a waiting worker takes it.
    """
    stats = PullStats()
    while True:
        deliveries = queue.take(1, wait=wait)
        if not deliveries:
            progress = queue.progress()
            if progress.finished:
                break
            if progress.total == 0:
                # Items are enqueued before workers start, so an empty queue was finished
                # and cleaned up already (a pod the Job started late): nothing to do.
                log.info("queue has no items (finished and cleaned up?); exiting")
                break
            continue
        [delivery] = deliveries
        log.info("took %s (attempt %d)", delivery.item, delivery.attempt)
        try:
            with heartbeat(queue, delivery):
                handle(delivery.item)
        except Exception as exc:
            stats.failed += 1
            error = describe_failure(exc)
            log.warning("%s failed on attempt %d: %s", delivery.item, delivery.attempt, error)
            queue.nack(delivery, error)
            continue
        stats.done += 1
        if not queue.ack(delivery):
            # Our lease had expired and the item went to another worker: harmless, since
            # a task's output is committed by its manifest and the rerun writes the same.
            stats.stale_acks += 1
            log.warning("ack of %s came after its visibility timeout", delivery.item)
    return stats


def run_pull_worker(name: str) -> int:
    """`python -m airflow_mapreduce.worker --pull NAME`: the queue URL comes from the
    environment (a Kubernetes Secret in pods), never from arguments that pod specs show."""
    import os
    import sys

    from airflow_mapreduce.queue.base import QUEUE_URL_ENV, open_queue
    from airflow_mapreduce.worker import memory
    from airflow_mapreduce.worker.run import run_task, task_summary

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    url = os.environ.get(QUEUE_URL_ENV)
    if not url:
        print(
            f"airflow-mapreduce worker: FAILED: --pull needs the queue URL in ${QUEUE_URL_ENV}",
            file=sys.stderr,
        )
        return 2

    def handle(spec_uri: str) -> None:
        memory.reset_process_peak()  # each task's manifest gets its own peak
        log.info("%s", task_summary(run_task(spec_uri)))

    queue = open_queue(url, name)
    try:
        stats = pull(queue, handle)
    finally:
        queue.close()
    log.info(
        "queue %s finished: %d task(s) run, %d failed attempt(s), %d late ack(s)",
        name, stats.done, stats.failed, stats.stale_acks,
    )  # fmt: skip
    return 0
