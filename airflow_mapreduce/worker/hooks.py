"""Per-task setup and teardown hooks: Python functions run around a task's records."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from airflow_mapreduce.errors import TaskFailedError
from airflow_mapreduce.spec.dataplane import HookSettings
from airflow_mapreduce.worker.callables import load_callable


@contextmanager
def task_hooks(hooks: HookSettings) -> Iterator[None]:
    """setup() before the first record; teardown() after the last, also when the task fails."""
    setup = load_callable(hooks.setup, "hooks.setup") if hooks.setup else None
    teardown = load_callable(hooks.teardown, "hooks.teardown") if hooks.teardown else None
    if setup is not None:
        _call(setup, hooks.setup)
    try:
        yield
    finally:
        if teardown is not None:
            _call(teardown, hooks.teardown)


def _call(function: object, name: str | None) -> None:
    try:
        function()  # type: ignore[operator]
    except Exception as exc:
        raise TaskFailedError(f"hook {name} raised {exc!r}") from exc
