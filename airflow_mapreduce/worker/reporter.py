"""What a Python mapper, combiner, reducer or hook may ask of the task running it.

Import it without Airflow (``from airflow_mapreduce.worker import reporter``)::

    reporter.increment_counter("Words", "long", 1)
    reporter.set_status("halfway")
    reporter.current_task().task_index

Outside a task (e.g. in a unit test of the user's function) counters go nowhere.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from airflow_mapreduce.plan.tasks import Counters

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class TaskInfo:
    kind: Literal["map", "reduce"]
    dag_id: str
    run_id: str
    task_index: int
    attempt: str
    counters: Counters = field(default_factory=dict)


_current: TaskInfo | None = None


def current_task() -> TaskInfo | None:
    return _current


def increment_counter(group: str, name: str, amount: int = 1) -> None:
    """Hadoop's Reporter.incrCounter: summed per task in its manifest, per job on commit."""
    if _current is None:
        return
    bucket = _current.counters.setdefault(group, {})
    bucket[name] = bucket.get(name, 0) + amount


def set_status(message: str) -> None:
    print(f"status: {message}", file=sys.stderr, flush=True)


def batch_mapper(function: F) -> F:
    """Mark a mapper that takes a list of input records and returns all their pairs.

    One Python call per block instead of one per record; in-mapper combining (summing in
    a dict) becomes possible. A record that makes the batch raise is found by calling the
    mapper on each record of the batch alone.
    """
    function.__mapreduce_batch__ = True  # type: ignore[attr-defined]
    return function


def is_batch_mapper(function: Callable[..., Any]) -> bool:
    return bool(getattr(function, "__mapreduce_batch__", False))


@contextmanager
def running(info: TaskInfo) -> Iterator[TaskInfo]:
    global _current  # noqa: PLW0603 - one task per worker process
    previous, _current = _current, info
    try:
        yield info
    finally:
        _current = previous
