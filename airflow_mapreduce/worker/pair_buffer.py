"""The sort buffer for Python callables: pairs grouped by key as Python objects.

A mapper's pairs are not encoded as they arrive: values collect per key in a dict, a
Python combiner is called on each group as it is (no JSON round trip), and only what is
spilled or shuffled gets encoded. With a reduce_by combiner (a binary function), each key
holds one value, folded in as pairs arrive: no lists and no call per key.

Keys are grouped by their JSON encoding, the shuffle's notion of "same key" (so 1, 1.0
and True stay three keys): str keys, by far the most common, are their own dict key; the
first key of another type switches the buffer to encoded-bytes keys.
"""

from __future__ import annotations

import itertools
import operator
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import compress
from typing import Any

from airflow_mapreduce.errors import RecordError, raised_on_key
from airflow_mapreduce.worker.codec import decode_json, encode_basestring, encode_json
from airflow_mapreduce.worker.fold import call_per_key
from airflow_mapreduce.worker.keys import TAB, RecordFormat
from airflow_mapreduce.worker.spill import MapOutputBuffer

Pairs = Iterable[tuple[Any, Any]]
Combiner = Callable[[Any, Iterator[Any]], Pairs]
Merge = Callable[[Any, Any], Any]
_MISSING = object()
_FIRST, _SECOND = operator.itemgetter(0), operator.itemgetter(1)

EMIT_CHUNK = 4096  # keys per map() call of the combiner when the buffer is drained
CHECK_EVERY = 4096  # records between two looks at the budget
# A new key's dict entry and one-value list, beyond the key object itself: measured at
# ~125 bytes (RSS growth over 207k keys of a word count), rounded up.
KEY_OVERHEAD = 136
VALUE_SLOT = 9  # a list slot, with the list's growth slack
ASCII_STR = sys.getsizeof("")  # an ASCII str is this plus one byte per character


class PairBuffer(MapOutputBuffer):
    def __init__(
        self,
        fmt: RecordFormat,
        budget: int,
        combiner: Combiner | None = None,
        combiner_name: str = "combiner",
        spill_dir: str | None = None,
        merge: Merge | None = None,
    ) -> None:
        super().__init__(fmt, budget, spill_dir)
        self.combiner = combiner
        self.combiner_name = combiner_name
        self.merge = merge  # a reduce_by combiner: values folded as they arrive
        # key -> its values (a list), or with `merge` its one folded value
        self._groups: dict[Any, Any] = {}
        self._encoded_keys = False  # False: every dict key is a str
        self._drained_records = 0

    def add_pairs(self, pairs: Pairs) -> None:
        for chunk in _chunks(pairs):
            while chunk:  # more than once only at the switch to encoded keys
                if self._encoded_keys:
                    added = self._add_encoded(chunk)
                else:
                    added = self._add_str_keyed(chunk)
                self.records += added
                del chunk[:added]
            if self.used > self.budget:
                self.spill()

    def add_mapping(self, mapping: Mapping[Any, Any]) -> None:
        """A batch mapper's dict or Counter (each key once). With a reduce_by combiner and
        str keys it is folded in by C loops over its keys: no Python step per pair."""
        if not mapping:
            return
        if self.merge is None or self._encoded_keys or set(map(type, mapping)) != {str}:
            self.add_pairs(mapping.items())
            return
        groups, merge = self._groups, self.merge
        keys, values = list(mapping), list(mapping.values())
        held = list(map(groups.get, keys, itertools.repeat(_MISSING)))
        fresh = list(map(operator.is_, held, itertools.repeat(_MISSING)))
        seen = list(map(operator.not_, fresh))
        try:
            folded = list(map(merge, compress(held, seen), compress(values, seen)))
        except Exception:
            for key, old, value in zip(compress(keys, seen), compress(held, seen),
                                       compress(values, seen), strict=True):  # fmt: skip
                self._folded(merge, old, key, value)  # raises, naming the key
            raise
        groups.update(zip(compress(keys, seen), folded, strict=True))
        new_keys = list(compress(keys, fresh))
        groups.update(zip(new_keys, compress(values, fresh), strict=True))
        self.records += len(keys)
        self._charge(sum(map(sys.getsizeof, new_keys)), len(new_keys), values)
        if self.used > self.budget:
            self.spill()

    def _add_str_keyed(self, chunk: list[tuple[Any, Any]]) -> int:
        """Adds the chunk's pairs up to the first whose key is no str, and from then on the
        buffer keys by encoded bytes; returns how many it added. The loop does only the
        dict work, the one Python step per pair no grouping avoids: sizes are charged
        after it by C loops over the new keys and the values."""
        groups, merge, fresh = self._groups, self.merge, list[str]()
        get, new_key = groups.get, fresh.append
        key: Any = None
        switch = False
        try:
            if merge is None:
                for key, value in chunk:
                    held = get(key)
                    if held is not None:
                        held.append(value)
                    elif type(key) is str:
                        groups[key] = [value]
                        new_key(key)
                    else:
                        switch = True
                        break
            else:  # a reduce_by combiner: a key's value is folded in place
                for key, value in chunk:
                    held = get(key, _MISSING)
                    if held is not _MISSING:
                        groups[key] = self._folded(merge, held, key, value)
                    elif type(key) is str:
                        groups[key] = value
                        new_key(key)
                    else:
                        switch = True
                        break
        except TypeError:
            if _hashable(key):
                raise  # not ours: e.g. the mapper yielded something other than a pair
            switch = True
        added = _index_of_key(chunk, key) if switch else len(chunk)
        if all(map(str.isascii, fresh)):  # getsizeof costs 7x a len(): ASCII sizes are known
            key_bytes = sum(map(len, fresh)) + ASCII_STR * len(fresh)
        else:
            key_bytes = sum(map(sys.getsizeof, fresh))
        self._charge(key_bytes, len(fresh), list(map(_SECOND, chunk[:added])))
        if switch:
            self._groups = {encode_json(k): held for k, held in groups.items()}
            self._encoded_keys = True
        return added

    def _add_encoded(self, chunk: list[tuple[Any, Any]]) -> int:
        """_add_str_keyed for a buffer keyed by encoded bytes (it takes every pair)."""
        groups, merge, fresh = self._groups, self.merge, list[bytes]()
        get, new_key = groups.get, fresh.append
        for key, value in chunk:
            raw = encode_json(key)
            if merge is None:
                held = get(raw)
                if held is None:
                    groups[raw] = [value]
                    new_key(raw)
                else:
                    held.append(value)
            elif (held := get(raw, _MISSING)) is _MISSING:
                groups[raw] = value
                new_key(raw)
            else:
                groups[raw] = self._folded(merge, held, key, value)
        self._charge(sum(map(sys.getsizeof, fresh)), len(fresh), list(map(_SECOND, chunk)))
        return len(chunk)

    def _charge(self, key_bytes: int, new_keys: int, values: list[Any]) -> None:
        """Charges what adding `values` holds beyond the new key objects (key_bytes): each
        new key's dict entry, and the values. Small ints cost nothing (shared); when every
        value is an int, one of them stands for all. A reduce_by combiner holds one folded
        value per key: an int stays an int, another value may grow by about its size."""
        all_ints = set(map(type, values)) == {int}
        if self.merge is not None:
            value_bytes = 0 if all_ints else sum(_size(v) for v in values if type(v) is not int)
        elif all_ints:
            value_bytes = (VALUE_SLOT + _size(values[-1])) * len(values)
        else:
            value_bytes = VALUE_SLOT * len(values) + sum(map(_size, values))
        self.used += key_bytes + KEY_OVERHEAD * new_keys + value_bytes

    def _folded(self, merge: Merge, held: Any, key: Any, value: Any) -> Any:
        try:
            return merge(held, value)
        except Exception as exc:
            raise raised_on_key(self.combiner_name, exc, key) from exc

    def _drain(self) -> list[list[bytes]]:
        groups, self._groups = self._groups, {}
        out: list[list[bytes]] = [[] for _ in range(self.fmt.num_partitions)]
        # Encoded keys, in the dict's order (encode_json for str keys, mapped in C).
        if self._encoded_keys:
            raws = list(groups)
        else:
            raws = list(map(str.encode, map(encode_basestring, groups), _UTF8, _SURROGATEESCAPE))
        if self.merge is not None:
            self._emit_merged(raws, list(groups.values()), out)
            return out
        if self.combiner is not None:
            self._emit_combined(groups, raws, out, self.combiner)
            return out
        # encoded key -> dict key, walked in the shuffle's order: by encoded bytes.
        order = dict(zip(raws, groups, strict=True))
        del raws
        self._emit(groups, order, out)
        return out

    def _emit(
        self, groups: dict[Any, list[Any]], order: dict[bytes, Any], out: list[list[bytes]]
    ) -> None:
        crc32, n, pop, encode = zlib.crc32, self.fmt.num_partitions, groups.pop, encode_json
        partition_of = None if self.fmt.partitions_by_crc32 else self.fmt.partition_of_key
        for raw in sorted(order):
            prefix = raw + TAB
            partition = crc32(raw) % n if partition_of is None else partition_of(raw)
            out[partition].extend([prefix + encode(v) for v in pop(order[raw])])

    def _emit_merged(self, raws: list[bytes], values: list[Any], out: list[list[bytes]]) -> None:
        """One line per key, each key's value folded already: formatted and sorted by C
        loops, with one Python step per line left only to drop it in its partition.
        Lines sort as their keys do (TAB sorts below every byte of a JSON text) and each
        key has one line, so each partition sorts its lines as they are."""
        lines = self._lines(
            raws, values, lambda i, value: f"folded key {decode_json(raws[i])!r} into {value!r}"
        )
        self._partitioned(raws, lines, out)
        for partition in out:
            partition.sort()
        # Hadoop's counters: every record went through the combiner, one came out per key.
        self.combine_input += self.records - self._drained_records
        self.combine_output += len(lines)
        self._drained_records = self.records

    def _encoded(self, items: list[Any], named: Callable[[int, Any], str]) -> list[bytes]:
        """Items JSON-encoded; one the shuffle cannot carry is named by named(index, item)."""
        try:
            return list(map(encode_json, items))
        except (TypeError, ValueError):
            for index, item in enumerate(items):
                try:
                    encode_json(item)
                except (TypeError, ValueError) as exc:
                    raise RecordError(
                        f"{self.combiner_name} {named(index, item)}, which the shuffle "
                        f"cannot carry as JSON ({exc})"
                    ) from exc
            raise

    def _emit_combined(
        self, groups: dict[Any, list[Any]], raws: list[bytes], out: list[list[bytes]],
        combiner: Combiner,
    ) -> None:  # fmt: skip
        """The combiner called on each key's values, EMIT_CHUNK keys at a time by map():
        the Python work per key is the combiner's own. Keys go in the dict's order, the
        order their values were stored in (walking 10^5 keys in sorted order costs a cache
        miss each), and each partition's lines are sorted after."""
        keys_held, values_held = list(groups), list[Any](groups.values())
        groups.clear()
        one_each = True  # one pair per key, under the key it was given: lines sort whole
        for first in range(0, len(raws), EMIT_CHUNK):
            chunk = raws[first : first + EMIT_CHUNK]
            end = first + len(chunk)
            values = values_held[first:end]
            values_held[first:end] = itertools.repeat(None, len(chunk))  # freed as done
            keys = list(map(decode_json, chunk)) if self._encoded_keys else keys_held[first:end]
            pairs = call_per_key(combiner, keys, map(iter, values), self.combiner_name)
            if set(map(type, pairs)) != {tuple} or set(map(len, pairs)) != {2}:
                pairs = self._checked_pairs(pairs)
            out_keys = list(map(_FIRST, pairs))
            if len(out_keys) == len(keys) and all(map(operator.is_, out_keys, keys)):
                out_raws = chunk
            else:
                out_raws = self._encoded(out_keys, lambda _, key: f"emitted key {key!r}")
                one_each = False
            lines = self._lines(out_raws, list(map(_SECOND, pairs)), _Emitted(out_keys))
            self._partitioned(out_raws, lines, out)
            self.combine_input += sum(map(len, values))
            self.combine_output += len(pairs)
        for lines in out:  # by key alone when a key has several lines: stable, as yielded
            lines.sort(key=None if one_each else self.fmt.key_of)

    def _checked_pairs(self, items: list[Any]) -> list[tuple[Any, Any]]:
        """The combiner's items as (key, value) tuples (a two-item list is one too), or an
        error naming the first that is no pair."""
        for item in items:
            if not isinstance(item, tuple | list) or len(item) != 2:
                raise RecordError(
                    f"{self.combiner_name} yielded {item!r}: a combiner yields (key, value) pairs"
                )
        return list(map(tuple, items))

    def _lines(
        self, raws: list[bytes], values: list[Any], named: Callable[[int, Any], str]
    ) -> list[bytes]:
        """`encoded key<TAB>encoded value` lines, formatted by C loops."""
        if set(map(type, values)) == {int}:  # counts and sums: the common values
            return list(map(b"%s\t%d".__mod__, zip(raws, values, strict=True)))
        encoded = self._encoded(values, named)
        return list(map(b"%s\t%s".__mod__, zip(raws, encoded, strict=True)))

    def _partitioned(self, raws: list[bytes], lines: list[bytes], out: list[list[bytes]]) -> None:
        """Each line appended to its key's partition (one Python step per line)."""
        n = self.fmt.num_partitions
        if n == 1:
            out[0] += lines
            return
        appends = [partition.append for partition in out]
        if not self.fmt.partitions_by_crc32:  # total order
            for line, partition in zip(lines, map(self.fmt.partition_of_key, raws), strict=True):
                appends[partition](line)
            return
        for line, hashed in zip(lines, map(zlib.crc32, raws), strict=True):
            appends[hashed % n](line)


class _Emitted:
    """Names a combiner's output value the shuffle cannot carry, with its key."""

    def __init__(self, keys: list[Any]) -> None:
        self.keys = keys

    def __call__(self, index: int, value: Any) -> str:
        return f"emitted {value!r} for key {self.keys[index]!r}"


_UTF8, _SURROGATEESCAPE = itertools.repeat("utf-8"), itertools.repeat("surrogateescape")


def _chunks(pairs: Pairs) -> Iterator[list[tuple[Any, Any]]]:
    """Pairs in lists of up to CHECK_EVERY, new lists the buffer may cut (a mapper's batch
    of pairs is sliced, anything else read by islice)."""
    if isinstance(pairs, list):
        for start in range(0, len(pairs), CHECK_EVERY):
            yield pairs[start : start + CHECK_EVERY]
        return
    it = iter(pairs)
    while chunk := list(itertools.islice(it, CHECK_EVERY)):
        yield chunk


def _index_of_key(chunk: list[tuple[Any, Any]], key: Any) -> int:
    """Where the first pair with this very key object is: the pair the buffer switched to
    encoded keys at (no pair before it had that key, or the switch would have come there)."""
    return next(index for index, pair in enumerate(chunk) if pair[0] is key)


def _hashable(key: Any) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return True


# Objects Python shares rather than allocates: a value that is one costs only its slot.
_SHARED = (type(None), bool)


def _size(value: Any) -> int:
    if (type(value) is int and -5 <= value <= 256) or isinstance(value, _SHARED):
        return 0
    return sys.getsizeof(value)
