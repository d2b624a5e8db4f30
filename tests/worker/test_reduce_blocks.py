"""Python reducers on the reduce side (worker/fold.py reduce_sorted_blocks): groups cut
from blocks of shuffle lines, against groups built here with a plain dict."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from airflow_mapreduce.errors import RecordError
from airflow_mapreduce.worker.fold import reduce_sorted_blocks
from tests.worker.test_reduce_by import KEYS, encode, random_blocks, sorted_lines

Reducer = Callable[[Any, Iterator[Any]], Iterable[Any]]


def reduced(blocks: Iterable[list[bytes]], reducer: Reducer) -> list[Any]:
    return [item for out in reduce_sorted_blocks(blocks, reducer, "reducer m:f") for item in out]


@pytest.mark.parametrize("seed", range(3))
def test_each_key_once_with_its_values_in_order_however_blocks_are_cut(seed: int) -> None:
    """Each key once, in the shuffle's order, with all its values decoded and in order,
    even when they run over many blocks; a reducer that reads only some of its values or
    yields several items per key does not shift the keys after it."""
    rng = random.Random(seed)
    pairs = [(rng.choice(KEYS[:6] if rng.random() < 0.3 else KEYS), rng.choice([1, "v", [2], 2.5]))
             for _ in range(10_000)]  # fmt: skip
    blocks = random_blocks(rng, sorted_lines(pairs))
    groups = reduced(blocks, lambda key, values: [(key, list(values))])
    raws = [encode(key) for key, _ in groups]
    assert raws == sorted(set(raws))
    expected: dict[bytes, list[Any]] = {}
    for key, value in pairs:
        expected.setdefault(encode(key), []).append(json.loads(encode(value)))
    assert {encode(key): values for key, values in groups} == expected

    def first_and_after(key: Any, values: Iterator[Any]) -> Iterator[Any]:
        yield key, next(values)
        yield "after", key

    assert reduced(blocks, first_and_after) == [
        item for key, values in groups for item in ((key, values[0]), ("after", key))
    ]


def test_a_key_over_many_blocks_streams_its_values_and_its_output() -> None:
    """A key whose values fill block after block is not held whole: the reducer sees its
    first value before the next block is read, and what it yields per value goes out in
    chunks while it runs."""
    lines = sorted_lines([("a", 0)] + [("big", i) for i in range(20_000)] + [("z", 1)])
    read: list[int] = []

    def blocks() -> Iterator[list[bytes]]:
        for start in range(0, len(lines), 100):
            read.append(start)
            yield lines[start : start + 100]

    def echo(key: Any, values: Iterator[Any]) -> Iterator[Any]:
        for value in values:
            if key == "big" and value == 0:
                assert read == [0], "the key's first value came after reading ahead"
            yield key, value

    outputs = list(reduce_sorted_blocks(blocks(), echo, "reducer m:f"))
    expected = [("a", 0)] + [("big", i) for i in range(20_000)] + [("z", 1)]
    assert [item for out in outputs for item in out] == expected
    assert max(map(len, outputs)) < 20_000


@pytest.mark.parametrize("at", ["inside a block", "at a block's end", "over blocks"])
def test_the_key_a_reducer_raised_on_is_named(at: str) -> None:
    pairs = [(f"k{i:03d}", i) for i in range(300)] + [("k150", -1)] * 500
    bad = {"inside a block": "k010", "at a block's end": "k049", "over blocks": "k150"}[at]

    def reducer(key: str, values: Iterator[int]) -> Iterator[Any]:
        total = sum(values)
        if key == bad:
            raise ValueError("no")
        yield key, total

    lines = sorted_lines(pairs)
    blocks = [lines[start : start + 50] for start in range(0, len(lines), 50)]
    with pytest.raises(RecordError, match=rf"reducer m:f raised ValueError\('no'\) on key '{bad}'"):
        reduced(blocks, reducer)
