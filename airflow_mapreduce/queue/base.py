"""The one small interface every work-queue backend implements, and its data."""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass
from typing import Protocol

from airflow_mapreduce.errors import MapReduceError

QUEUE_URL_ENV = "AIRFLOW_MAPREDUCE_QUEUE_URL"  # set from an Airflow connection or a k8s Secret


class QueueError(MapReduceError):
    """The work queue is unreachable, misconfigured or inconsistent."""


@dataclass(frozen=True)
class QueuePolicy:
    """Retry and visibility rules, stored with the queue at enqueue time so that every
    worker applies the same ones without being configured."""

    max_attempts: int = 3
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0
    visibility_timeout_seconds: float = 300.0

    def backoff(self, attempt: int) -> float:
        """Delay before delivery attempt+1: exponential from backoff_seconds, capped."""
        return float(min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class Delivery:
    """One item handed to one worker; `token` identifies this delivery (not the item)."""

    item: str
    attempt: int
    token: str
    visibility_timeout: float  # heartbeat well within it, or the item is handed out again


@dataclass(frozen=True)
class DeadLetter:
    item: str
    attempts: int
    error: str


@dataclass(frozen=True)
class Progress:
    total: int
    done: int
    in_flight: int
    queued: int  # ready or waiting for a retry's backoff
    retried: int  # deliveries after the first, over the run
    dead: int

    @property
    def finished(self) -> bool:
        return self.total > 0 and self.done + self.dead >= self.total


class WorkQueue(Protocol):
    """At-least-once delivery of string items (task-spec URIs) to competing workers.

    An item taken and neither acked nor nacked within the visibility timeout (its worker
    died) is delivered again. Handlers must be idempotent: map tasks are, since a task's
    manifest, written last, names exactly one attempt's files.
    """

    def enqueue(self, items: list[str], policy: QueuePolicy) -> int:
        """Add items not enqueued before (idempotent per queue); return how many were new."""

    def take(self, count: int = 1, wait: float = 0.5) -> list[Delivery]:
        """Up to `count` deliveries; waits up to `wait` seconds for one; [] if none came."""

    def ack(self, delivery: Delivery) -> bool:
        """Mark done; False if this delivery had already expired and was handed out again."""

    def nack(self, delivery: Delivery, error: str) -> bool:
        """Retry after backoff, or dead-letter with `error` once max_attempts is reached."""

    def extend(self, delivery: Delivery) -> bool:
        """Heartbeat: push the delivery's visibility timeout forward."""

    def progress(self) -> Progress: ...

    def dead_letters(self) -> list[DeadLetter]: ...

    def purge(self) -> None:
        """Delete all state of this queue (the run's cleanup)."""

    def close(self) -> None: ...


def queue_name(dag_id: str, run_id: str) -> str:
    """A name valid for every backend (Redis keys, NATS stream/subject tokens), unique per run."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", f"{dag_id}-{run_id}").strip("-")[:60]
    digest = zlib.crc32(f"{dag_id}\0{run_id}".encode())
    return f"amr-{slug}-{digest:08x}"


def item_id(item: str) -> str:
    """Stable short id of an item (NATS message-id for de-duplication)."""
    return hashlib.sha1(item.encode()).hexdigest()[:20]


def open_queue(url: str, name: str) -> WorkQueue:
    """The backend for `url`: redis://, rediss:// or nats:// (tls:// for NATS over TLS)."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("redis", "rediss", "unix"):
        from airflow_mapreduce.queue.redis_queue import RedisWorkQueue

        return RedisWorkQueue(url, name)
    if scheme in ("nats", "tls"):
        from airflow_mapreduce.queue.nats_queue import NatsWorkQueue

        return NatsWorkQueue(url, name)
    raise QueueError(
        f"unsupported queue URL scheme {scheme!r} (in ${QUEUE_URL_ENV} or the queue "
        "connection); expected redis://host:port/db or nats://host:port"
    )
