"""Small callables the data-plane tests and docs use (counters, lifecycle, JSON-lines)."""

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from airflow_mapreduce.worker import reporter


def group_values(key: str, values: Iterable[str]) -> Iterator[tuple[str, list[str]]]:
    yield key, list(values)


def risky_mapper(_key: None, line: str) -> Iterator[tuple[str, int]]:
    """Raises on lines holding BAD; counts the words of the good ones."""
    if "BAD" in line:
        raise ValueError("cannot parse")
    for word in line.split():
        reporter.increment_counter("Probe", "words", 1)
        yield word, 1


@reporter.batch_mapper
def risky_batch_mapper(lines: list[str]) -> list[tuple[str, int]]:
    """The batch form of risky_mapper (without counters: a failed batch is retried)."""
    if any("BAD" in line for line in lines):
        raise ValueError("cannot parse")
    return [(word, 1) for line in lines for word in line.split()]


@reporter.batch_mapper
def risky_counting_mapper(lines: list[str]) -> Counter[str]:
    """risky_batch_mapper returning a mapping, word -> count (a batch mapper may)."""
    if any("BAD" in line for line in lines):
        raise ValueError("cannot parse")
    return Counter(word for line in lines for word in line.split())


def item_mapper(_key: None, item: dict[str, Any]) -> Iterator[tuple[str, int]]:
    """JSON-lines input: one work item (a parsed object) per call."""
    yield item["user"], int(item["amount"])


def total(key: str, values: Iterable[int]) -> Iterator[tuple[str, int]]:
    yield key, sum(values)


def setup() -> None:
    reporter.increment_counter("Probe", "setups", 1)


def teardown() -> None:
    marker = os.environ.get("PROBE_TEARDOWN_DIR")
    task = reporter.current_task()
    if marker and task is not None:
        with open(os.path.join(marker, f"{task.kind}-{task.task_index}"), "w") as f:
            f.write("done")
