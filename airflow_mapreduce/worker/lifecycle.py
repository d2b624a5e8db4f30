"""A task's lifecycle: setup and teardown Python functions run around its records."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from airflow_mapreduce.errors import TaskFailedError
from airflow_mapreduce.job.dataplane import LifecycleSettings
from airflow_mapreduce.worker.callables import load_callable


@contextmanager
def task_lifecycle(lifecycle: LifecycleSettings) -> Iterator[None]:
    """setup() before the first record; teardown() after the last, also when the task fails."""
    setup = load_callable(lifecycle.setup, "lifecycle.setup") if lifecycle.setup else None
    teardown = (
        load_callable(lifecycle.teardown, "lifecycle.teardown") if lifecycle.teardown else None
    )
    if setup is not None:
        _call(setup, lifecycle.setup)
    try:
        yield
    finally:
        if teardown is not None:
            _call(teardown, lifecycle.teardown)


def _call(function: object, name: str | None) -> None:
    try:
        function()  # type: ignore[operator]
    except Exception as exc:
        raise TaskFailedError(f"lifecycle function {name} raised {exc!r}") from exc
