"""The reduce side of JSON-codec records (all-Python jobs), a block at a time.

Python reducers are called by reduce_sorted_blocks: keys and values decoded by one
json.loads per block, groups cut by C loops, the reducer called by map().

A Python reducer costs a call and a generator per key. A reduce_by function
needs none of that: each block of merged lines is split into keys and values with one
join and one split, its values decoded by one json.loads, its groups found by comparing
neighbouring keys, all in C loops. A key with one value (most keys, after a combiner) is
done at that; the others are folded with functools.reduce, one Python step each. A key
whose values run past the end of a block is carried, folded so far, into the next one,
so a key with more values than memory holds is fine.
"""

from __future__ import annotations

import collections
import functools
import itertools
import json
import operator
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from airflow_mapreduce.errors import RecordError, raised_on_key
from airflow_mapreduce.worker.codec import decode_json

Merge = Callable[[Any, Any], Any]
Reducer = Callable[[Any, Iterator[Any]], Iterable[Any]]
_NO_KEY = object()
OUTPUT_CHUNK = 4096
_ONES = itertools.repeat(1)


def fold_sorted_blocks(
    blocks: Iterable[list[bytes]], merge: Merge, name: str
) -> Iterator[tuple[list[Any], list[Any]]]:
    """(keys, folded values) for key-sorted `json-key<TAB>json-value` lines given in
    blocks; every key once, in order. `name` says whose error it is (e.g. reducer m:f)."""
    carry_raw: Any = _NO_KEY  # the last key seen, its values folded so far
    carry_value: Any = None
    for block in blocks:
        if not block:
            continue
        raws, values = _columns(block)
        # a group starts wherever a key differs from the one before it (the carry's first)
        starts = list(
            itertools.compress(itertools.count(), map(operator.ne, raws, [carry_raw, *raws]))
        )
        first = starts[0] if starts else len(raws)
        done_raws: list[bytes] = []
        done_values: list[Any] = []
        if carry_raw is not _NO_KEY:
            if first:  # the carried key's values go on into this block
                carry_value = _fold([carry_value, *values[:first]], merge, name, carry_raw)
            if starts:
                done_raws.append(carry_raw)
                done_values.append(carry_value)
        if not starts:
            continue
        ends = [*starts[1:], len(raws)]
        folded = list(map(values.__getitem__, starts))  # a key's only value is its fold
        sizes = map(operator.sub, ends, starts)
        many = list(itertools.compress(itertools.count(), map(operator.ne, sizes, _ONES)))
        if many:  # the keys with more values than one (few, after a combiner)
            firsts = list(map(starts.__getitem__, many))
            slices = map(slice, firsts, map(ends.__getitem__, many))
            groups = list(map(values.__getitem__, slices))
            try:
                reduced = map(functools.reduce, itertools.repeat(merge), groups)
                for index, value in zip(many, reduced, strict=True):
                    folded[index] = value
            except Exception:
                # Name the key: fold the groups one by one until the failing one raises.
                for first, group in zip(firsts, groups, strict=True):
                    _fold(group, merge, name, raws[first])
                raise
        done_raws += map(raws.__getitem__, starts)
        done_values += folded
        # The block's last key may have more values in the next block.
        carry_raw, carry_value = done_raws.pop(), done_values.pop()
        if done_raws:
            yield _decode_all(done_raws), done_values
    if carry_raw is not _NO_KEY:
        yield [decode_json(carry_raw)], [carry_value]


def reduce_sorted_blocks(
    blocks: Iterable[list[bytes]], reducer: Reducer, name: str
) -> Iterator[list[Any]]:
    """A Python reducer's output, a list per block, for key-sorted JSON-codec lines given
    in blocks: reducer(key, iterator of its values) once per key, in the shuffle's order.

    The groups that end inside a block are cut by C loops and the reducer is called on
    each by map(): the Python work per key is the reducer's own. A block's last group may
    go on into later blocks: its values stream (_KeyTail), so a key with more values than
    memory holds is fine. `name` says whose error it is (e.g. reducer m:f)."""
    source = iter(blocks)
    pending: tuple[list[bytes], list[Any]] | None = None
    while True:
        if pending is None:
            block = next(source, None)
            if block is None:
                return
            if not block:
                continue
            raws, values = _columns(block)
        else:
            (raws, values), pending = pending, None
        starts = list(
            itertools.compress(itertools.count(), map(operator.ne, raws, [_NO_KEY, *raws]))
        )
        last = starts.pop()
        if starts:
            keys = _decode_all(list(map(raws.__getitem__, starts)))
            slices = map(slice, starts, [*starts[1:], last])
            yield call_per_key(reducer, keys, map(iter, map(values.__getitem__, slices)), name)
        tail = _KeyTail(raws[last], values[last:], source)
        tail_values = iter(tail)
        yield from _streamed(reducer, decode_json(raws[last]), tail_values, name)
        collections.deque(tail_values, maxlen=0)  # values the reducer left unread
        pending = tail.rest


class _KeyTail:
    """The values of a block's last key: those in the block, then those that open the
    next blocks, read as the reducer asks for them. `rest` is what follows the key in
    the block where it ends (None when the blocks ran out)."""

    def __init__(self, raw: bytes, values: list[Any], blocks: Iterator[list[bytes]]) -> None:
        self.raw, self.values, self.blocks = raw, values, blocks
        self.rest: tuple[list[bytes], list[Any]] | None = None

    def __iter__(self) -> Iterator[Any]:
        yield from self.values
        for block in self.blocks:
            if not block:
                continue
            raws, values = _columns(block)
            others = map(operator.ne, raws, itertools.repeat(self.raw))
            end = next(itertools.compress(itertools.count(), others), len(raws))
            yield from values[:end]
            if end < len(raws):
                self.rest = raws[end:], values[end:]
                return


def _streamed(reducer: Reducer, key: Any, values: Iterator[Any], name: str) -> Iterator[list[Any]]:
    """reducer(key, values) for one key whose values may be many: its output in lists of
    OUTPUT_CHUNK items, as it comes (a reducer may write an item per value)."""
    try:
        output = iter(reducer(key, values))
        while chunk := list(itertools.islice(output, OUTPUT_CHUNK)):
            yield chunk
    except Exception as exc:
        raise raised_on_key(name, exc, key) from exc


def call_per_key(
    function: Reducer, keys: list[Any], groups: Iterator[Iterator[Any]], name: str
) -> list[Any]:
    """function(key, values) for each key and its group (a combiner or reducer), called
    by map(), outputs joined in one list (no list per key: objects that outlive a call
    make the garbage collector walk the heap). An error names its key."""
    pending = iter(keys)
    try:
        return list(itertools.chain.from_iterable(map(function, pending, groups)))
    except Exception as exc:  # map took the failing key last: what is left comes after it
        failed = keys[len(keys) - operator.length_hint(pending) - 1]
        raise raised_on_key(name, exc, failed) from exc


def _columns(block: list[bytes]) -> tuple[list[bytes], list[Any]]:
    """(encoded keys, decoded values) of a block of lines. JSON escapes every control
    character, so each line has exactly one TAB: one join and one split cut them all."""
    if not block:
        return [], []
    fields = b"\t".join(block).split(b"\t")
    if len(fields) != 2 * len(block):
        bad = next((line for line in block if line.count(b"\t") != 1), block[0])
        raise RecordError(
            f"shuffle record {bad[:200]!r} is not one JSON key, a TAB and one JSON value: "
            "the map output is damaged or was not written by this job's mappers"
        )
    return fields[0::2], _decode_all(fields[1::2])


def _decode_all(items: list[bytes]) -> list[Any]:
    """JSON items decoded by one json.loads, as decode_json decodes each (undecodable
    input bytes, carried as surrogate escapes, survive)."""
    text = (b"[%s]" % b",".join(items)).decode("utf-8", "surrogateescape")
    return json.loads(text)  # type: ignore[no-any-return]


def _fold(values: list[Any], merge: Merge, name: str, raw_key: bytes) -> Any:
    try:
        return functools.reduce(merge, values)
    except Exception as exc:
        raise raised_on_key(name, exc, decode_json(raw_key)) from exc
