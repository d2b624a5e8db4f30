"""Progress lines (done/total, in flight, retried, dead-lettered, items/s, ETA) and the
wait loop shared by the Airflow side and the local pool."""

from __future__ import annotations

import time
from collections.abc import Callable

from airflow_mapreduce.queue.base import Progress, WorkQueue


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class ProgressMeter:
    """Rates are measured from the first observation, so a resumed run reports its own speed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._start: tuple[float, int] | None = None

    def describe(self, progress: Progress) -> str:
        now = self._clock()
        settled = progress.done + progress.dead
        if self._start is None:
            self._start = (now, settled)
        started_at, settled_at_start = self._start
        elapsed = now - started_at
        rate = (settled - settled_at_start) / elapsed if elapsed > 0 else 0.0
        left = progress.total - settled
        eta = format_duration(left / rate) if rate > 0 else "unknown"
        share = 100.0 * progress.done / progress.total if progress.total else 0.0
        return (
            f"{progress.done}/{progress.total} done ({share:.1f}%), {progress.in_flight} in "
            f"flight, {progress.queued} queued, {progress.retried} retried, {progress.dead} "
            f"dead-lettered, {rate:.1f} items/s, ETA {eta}"
        )


def wait_until_finished(
    queue: WorkQueue,
    *,
    log: Callable[[str], None],
    interval: float = 5.0,
    check: Callable[[], None] = lambda: None,
    poll: float = 0.2,
) -> Progress:
    """Block until every item is done or dead-lettered, logging progress every `interval`.

    `check` raises when the workers can no longer finish (all local workers exited, the
    Kubernetes Job failed); it is called on every poll.
    """
    meter = ProgressMeter()
    next_log = 0.0
    while True:
        progress = queue.progress()
        now = time.monotonic()
        if progress.finished or now >= next_log:
            log(meter.describe(progress))
            next_log = now + interval
        if progress.finished:
            return progress
        try:
            check()
        except Exception:
            # The workers may have finished the queue just after it was read above.
            if queue.progress().finished:
                continue
            raise
        time.sleep(poll)
