"""The reduce side of JSON-codec records (all-Python jobs), a block at a time.

Python reducers get their groups from json_groups: keys and values decoded by one
json.loads per block, not one decode call per record.

A Python reducer costs a call, a generator and a decode per key. A reduce_by function
needs none of that: each block of merged lines is split into keys and values with one
join and one split, its values decoded by one json.loads, its groups found by comparing
neighbouring keys, all in C loops. A key with one value (most keys, after a combiner) is
done at that; the others are folded with functools.reduce, one Python step each. A key
whose values run past the end of a block is carried, folded so far, into the next one,
so a key with more values than memory holds is fine.
"""

from __future__ import annotations

import functools
import itertools
import json
import operator
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from airflow_mapreduce.errors import RecordError, raised_on_key
from airflow_mapreduce.worker.codec import decode_json

Merge = Callable[[Any, Any], Any]
_NO_KEY = object()
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


def json_groups(blocks: Iterable[list[bytes]]) -> Iterator[tuple[Any, Iterator[Any]]]:
    """(key, iterator of its values) for key-sorted JSON-codec lines given in blocks, for
    a Python reducer: keys and values decoded a block at a time, groups cut by
    itertools.groupby on the encoded key, values streaming across blocks."""
    records = itertools.chain.from_iterable(map(_decoded, blocks))
    for _, group in itertools.groupby(records, _RAW_KEY):
        _, key, value = next(group)
        yield key, itertools.chain((value,), map(_VALUE, group))  # noqa: B031 (once: the rest)


_RAW_KEY, _VALUE = operator.itemgetter(0), operator.itemgetter(2)


def _decoded(block: list[bytes]) -> Iterator[tuple[bytes, Any, Any]]:
    """(encoded key, key, value) of each line of a block."""
    raws, values = _columns(block)
    return zip(raws, _decode_all(raws), values, strict=True)


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
