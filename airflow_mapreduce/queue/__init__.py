"""Work-queue mode: workers pull map tasks from Redis or NATS JetStream (no Airflow here)."""

from airflow_mapreduce.queue.base import (
    QUEUE_URL_ENV,
    DeadLetter,
    Delivery,
    Progress,
    QueueError,
    QueuePolicy,
    WorkQueue,
    open_queue,
    queue_name,
)

__all__ = [
    "QUEUE_URL_ENV",
    "DeadLetter",
    "Delivery",
    "Progress",
    "QueueError",
    "QueuePolicy",
    "WorkQueue",
    "open_queue",
    "queue_name",
]
