"""merge_blocks: k-way merge of sorted runs given as blocks, against sorted()."""

from __future__ import annotations

import collections
import operator
import random

import pytest

from airflow_mapreduce.worker.merge import merge_blocks


def as_blocks(lines: list[bytes], rng: random.Random) -> list[list[bytes]]:
    blocks, i = [], 0
    while i < len(lines):
        size = rng.choice([0, 1, 2, 7, 50])  # empty blocks too
        blocks.append(lines[i : i + size])
        i += size
    return blocks


@pytest.mark.parametrize("seed", range(25))
def test_lines_come_out_in_order_whatever_the_runs_and_blocks(seed: int) -> None:
    rng = random.Random(seed)
    runs = [
        sorted(
            b"k%03d\t%d" % (rng.randrange(60), rng.randrange(9)) for _ in range(rng.randrange(120))
        )
        for _ in range(seed if seed < 2 else rng.randrange(2, 7))  # no run, one run, k runs
    ]
    merged = list(merge_blocks([as_blocks(run, rng) for run in runs]))
    assert merged == sorted(line for run in runs for line in run)


@pytest.mark.parametrize("seed", range(25))
def test_runs_sorted_by_key_only_keep_keys_in_order_and_together(seed: int) -> None:
    """Map runs order keys but not values: a key function on (key, sep, value) still
    yields every key's lines in key order, each key's lines together."""
    rng = random.Random(seed)
    runs = []
    for _ in range(1 if seed == 0 else rng.randrange(2, 6)):
        keys = sorted(rng.sample(range(40), rng.randrange(1, 20)))
        runs.append(
            [b"k%02d\t%d" % (k, rng.randrange(9)) for k in keys for _ in range(rng.randrange(1, 4))]
        )
    key = operator.methodcaller("partition", b"\t")
    merged = list(merge_blocks([as_blocks(run, rng) for run in runs], key))
    assert collections.Counter(merged) == collections.Counter(line for run in runs for line in run)
    keys = [line.split(b"\t")[0] for line in merged]
    assert keys == sorted(keys)
