"""NATS JetStream backend: a work-queue stream, one durable pull consumer, a DLQ stream.

- Items are published with `Nats-Msg-Id` = hash of the item: JetStream drops duplicates
  within the stream's duplicate window (one day), so enqueueing twice is harmless.
- Explicit ack; `ack_wait` is the visibility timeout (heartbeats send `in_progress`).
- A failed attempt is `nak`-ed with the backoff as delay. The worker holding the last
  allowed attempt publishes {item, attempts, error} to the `<name>_DLQ` stream and then
  terminates the message. A message delivered more than max_attempts times (its workers
  died) is dead-lettered by whichever worker receives it next.
- Retry policy travels in the stream's metadata, so workers need no configuration.

nats-py is asyncio; this class runs its own event loop in a daemon thread to offer the
same blocking interface as the Redis backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from airflow_mapreduce.queue.base import (
    DeadLetter,
    Delivery,
    Progress,
    QueueError,
    QueuePolicy,
    item_id,
)

T = TypeVar("T")
CONSUMER = "workers"
DUPLICATE_WINDOW_SECONDS = 24 * 3600.0


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed: nats-py runs ~1.4x faster on it (bench/queue_bench.py)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class NatsWorkQueue:
    def __init__(self, url: str, name: str) -> None:
        self.name = name
        self.stream = name
        self.dlq_stream = f"{name}_DLQ"
        self.subject = f"amr.{name}.tasks"
        self.dlq_subject = f"amr.{name}.dead"
        self._loop = _new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._inflight: dict[str, Any] = {}  # token -> nats Msg held by this process
        self._sub: Any = None
        self._policy: QueuePolicy | None = None
        self._nc: Any = self._run(self._connect(url))
        self._js: Any = self._nc.jetstream()

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _connect(self, url: str) -> Any:
        import nats

        try:
            # Keep reconnecting through a server restart instead of failing the worker.
            return await nats.connect(
                url, max_reconnect_attempts=-1, reconnect_time_wait=0.25, connect_timeout=5
            )
        except Exception as exc:
            raise QueueError(f"NATS queue {self.name}: cannot connect: {exc}") from exc

    # -- producer side ------------------------------------------------------------------

    def enqueue(self, items: list[str], policy: QueuePolicy) -> int:
        return self._run(self._enqueue(items, policy), timeout=max(120, len(items) / 500))

    async def _enqueue(self, items: list[str], policy: QueuePolicy) -> int:
        from nats.js.api import (
            AckPolicy,
            ConsumerConfig,
            DeliverPolicy,
            RetentionPolicy,
            StreamConfig,
        )

        await self._js.add_stream(
            StreamConfig(
                name=self.stream,
                subjects=[self.subject],
                retention=RetentionPolicy.WORK_QUEUE,
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
                metadata={
                    "max_attempts": str(policy.max_attempts),
                    "backoff": str(policy.backoff_seconds),
                    "max_backoff": str(policy.max_backoff_seconds),
                    "visibility": str(policy.visibility_timeout_seconds),
                },
            )
        )
        await self._js.add_stream(StreamConfig(name=self.dlq_stream, subjects=[self.dlq_subject]))
        await self._js.add_consumer(
            self.stream,
            ConsumerConfig(
                durable_name=CONSUMER,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=policy.visibility_timeout_seconds,
                max_deliver=-1,  # attempts are counted by the workers: see the module doc
                max_ack_pending=-1,
                max_waiting=4096,
            ),
        )
        before = int((await self._js.stream_info(self.stream)).state.last_seq)
        if before == 0 and await self._publish_unacked(items):
            return len(set(items))
        # Re-enqueue (or the fast path was interrupted): one acked publish per item;
        # JetStream drops the items it already has by their Msg-Id.
        new = 0
        for start in range(0, len(items), 2000):
            futures = [
                await self._js.publish_async(
                    self.subject, item.encode(), headers={"Nats-Msg-Id": item_id(item)}
                )
                for item in items[start : start + 2000]
            ]
            for ack in await asyncio.gather(*futures):
                new += 0 if ack.duplicate else 1
        return new

    async def _publish_unacked(self, items: list[str]) -> bool:
        """Fast path into an empty stream: core publishes (4x faster than acked ones
        here), then proof from the stream itself that every distinct item is stored."""
        reconnects = self._nc.stats["reconnects"]
        for item in items:
            await self._nc.publish(
                self.subject, item.encode(), headers={"Nats-Msg-Id": item_id(item)}
            )
        await self._nc.flush()
        expected = len(set(items))
        deadline = time.monotonic() + 10 + expected / 5000
        while time.monotonic() < deadline and self._nc.stats["reconnects"] == reconnects:
            stored = int((await self._js.stream_info(self.stream)).state.last_seq)
            if stored == expected:
                return True
            await asyncio.sleep(0.05)
        return False

    # -- worker side ----------------------------------------------------------------------

    def take(self, count: int = 1, wait: float = 0.5) -> list[Delivery]:
        return self._run(self._take(count, wait))

    async def _take(self, count: int, wait: float) -> list[Delivery]:
        import nats.errors
        import nats.js.errors

        try:
            policy = await self._load_policy()
        except nats.js.errors.NotFoundError:  # started before the enqueue: wait for it
            await asyncio.sleep(wait)
            return []
        if self._sub is None:
            self._sub = await self._js.pull_subscribe_bind(CONSUMER, stream=self.stream)
        try:
            messages = await self._sub.fetch(batch=count, timeout=max(wait, 0.05))
        except (TimeoutError, nats.errors.TimeoutError):
            return []
        deliveries = []
        for msg in messages:
            attempt = int(msg.metadata.num_delivered)
            item = msg.data.decode()
            if attempt > policy.max_attempts:  # earlier deliveries were never acked
                await self._dead_letter(
                    msg,
                    item,
                    attempt - 1,
                    f"not acknowledged within the visibility timeout "
                    f"({policy.visibility_timeout_seconds:g} s) on any of {attempt - 1} "
                    "deliveries: the worker died or hung",
                )
                continue
            token = msg.reply  # the ack subject: unique per delivery (stream seq, count)
            self._inflight[token] = msg
            deliveries.append(Delivery(item, attempt, token, policy.visibility_timeout_seconds))
        return deliveries

    async def _load_policy(self) -> QueuePolicy:
        if self._policy is None:
            info = await self._js.stream_info(self.stream)
            meta = info.config.metadata or {}
            self._policy = QueuePolicy(
                max_attempts=int(meta.get("max_attempts", 3)),
                backoff_seconds=float(meta.get("backoff", 1)),
                max_backoff_seconds=float(meta.get("max_backoff", 60)),
                visibility_timeout_seconds=float(meta.get("visibility", 300)),
            )
        return self._policy

    async def _dead_letter(self, msg: Any, item: str, attempts: int, error: str) -> None:
        record = {"item": item, "attempts": attempts, "error": error}
        # Msg-Id: a worker dying between publish and term cannot dead-letter an item twice.
        await self._js.publish(
            self.dlq_subject,
            json.dumps(record).encode(),
            headers={"Nats-Msg-Id": item_id(item)},
        )
        await msg.term()

    def ack(self, delivery: Delivery) -> bool:
        msg = self._inflight.pop(delivery.token, None)
        if msg is None:
            return False
        try:
            self._run(msg.ack_sync(timeout=10))
        except Exception:
            return False  # the server redelivers it; the handler is idempotent
        return True

    def ack_many(self, deliveries: list[Delivery]) -> int:
        """Fire-and-forget acks, flushed once (the benchmark's consumers use it)."""

        async def ack_all() -> int:
            msgs = [self._inflight.pop(d.token) for d in deliveries if d.token in self._inflight]
            for msg in msgs:
                await msg.ack()
            await self._nc.flush()
            return len(msgs)

        return self._run(ack_all())

    def nack(self, delivery: Delivery, error: str) -> bool:
        msg = self._inflight.pop(delivery.token, None)
        if msg is None:
            return False

        async def nack_one() -> None:
            policy = await self._load_policy()
            if delivery.attempt >= policy.max_attempts:
                await self._dead_letter(msg, delivery.item, delivery.attempt, error[-4000:])
            else:
                await msg.nak(delay=policy.backoff(delivery.attempt))

        self._run(nack_one())
        return True

    def extend(self, delivery: Delivery) -> bool:
        msg = self._inflight.get(delivery.token)
        if msg is None:
            return False
        self._run(msg.in_progress())
        return True

    # -- observers ------------------------------------------------------------------------

    def progress(self) -> Progress:
        return self._run(self._progress())

    async def _progress(self) -> Progress:
        import nats.js.errors

        try:
            work = await self._js.stream_info(self.stream)
            dlq = await self._js.stream_info(self.dlq_stream)
            consumer = await self._js.consumer_info(self.stream, CONSUMER)
        except nats.js.errors.NotFoundError:
            return Progress(total=0, done=0, in_flight=0, queued=0, retried=0, dead=0)
        total = int(work.state.last_seq)  # every accepted publish; duplicates are dropped
        remaining = int(work.state.messages)
        dead = int(dlq.state.messages)
        in_flight = int(consumer.num_ack_pending)
        return Progress(
            total=total,
            done=max(0, total - remaining - dead),
            in_flight=in_flight,
            queued=max(0, remaining - in_flight),
            retried=int(consumer.num_redelivered),
            dead=dead,
        )

    def dead_letters(self) -> list[DeadLetter]:
        return self._run(self._dead_letters())

    async def _dead_letters(self) -> list[DeadLetter]:
        import nats.js.errors

        try:
            info = await self._js.stream_info(self.dlq_stream)
        except nats.js.errors.NotFoundError:
            return []
        letters = []
        for seq in range(int(info.state.first_seq), int(info.state.last_seq) + 1):
            if seq == 0:
                break
            raw = await self._js.get_msg(self.dlq_stream, seq)
            record = json.loads(raw.data)
            letters.append(DeadLetter(record["item"], int(record["attempts"]), record["error"]))
        return sorted(letters, key=lambda d: d.item)

    def purge(self) -> None:
        async def delete() -> None:
            import nats.js.errors

            for stream in (self.stream, self.dlq_stream):
                with contextlib.suppress(nats.js.errors.NotFoundError):
                    await self._js.delete_stream(stream)

        self._run(delete())

    def close(self) -> None:
        # Acks are synchronous, so nothing is left to drain; closing a connection to a
        # server that is already gone must not fail the worker.
        with contextlib.suppress(Exception):
            self._run(self._nc.close(), timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
