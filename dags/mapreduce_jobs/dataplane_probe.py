"""Small callables the data-plane tests and docs use (counters, hooks, JSON-lines items)."""

import os
from collections.abc import Iterable, Iterator
from typing import Any

from airflow_mapreduce.worker import context


def group_values(key: str, values: Iterable[str]) -> Iterator[tuple[str, list[str]]]:
    yield key, list(values)


def risky_mapper(_key: None, line: str) -> Iterator[tuple[str, int]]:
    """Raises on lines holding BAD; counts the words of the good ones."""
    if "BAD" in line:
        raise ValueError("cannot parse")
    for word in line.split():
        context.increment_counter("Probe", "words", 1)
        yield word, 1


def item_mapper(_key: None, item: dict[str, Any]) -> Iterator[tuple[str, int]]:
    """JSON-lines input: one work item (a parsed object) per call."""
    yield item["user"], int(item["amount"])


def total(key: str, values: Iterable[int]) -> Iterator[tuple[str, int]]:
    yield key, sum(values)


def setup() -> None:
    context.increment_counter("Probe", "setups", 1)


def teardown() -> None:
    marker = os.environ.get("PROBE_TEARDOWN_DIR")
    task = context.current_task()
    if marker and task is not None:
        with open(os.path.join(marker, f"{task.kind}-{task.task_index}"), "w") as f:
            f.write("done")
