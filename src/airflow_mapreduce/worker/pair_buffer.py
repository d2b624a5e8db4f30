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
from airflow_mapreduce.worker.keys import TAB, RecordFormat
from airflow_mapreduce.worker.spill import MapOutputBuffer

Pairs = Iterable[tuple[Any, Any]]
# One batch added: (pairs, bytes to charge beyond what the loop charged, pairs left or None).
_Batch = tuple[int, int, "Iterator[tuple[Any, Any]] | None"]
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
        rest: Iterator[tuple[Any, Any]] | None = iter(pairs)
        while rest is not None:
            if self.merge is not None:
                add = self._merge_encoded if self._encoded_keys else self._merge_str_keyed
            else:
                add = self._add_encoded if self._encoded_keys else self._add_str_keyed
            added, charge, rest = add(rest)
            self.records += added
            self.used += charge
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
        self.used += sum(map(sys.getsizeof, new_keys)) + KEY_OVERHEAD * len(new_keys)
        if set(map(type, values)) != {int}:  # as in _merge_str_keyed: ints cost nothing
            self.used += sum(_size(v) for v in values if type(v) is not int)
        if self.used > self.budget:
            self.spill()

    def _add_str_keyed(self, it: Iterator[tuple[Any, Any]]) -> _Batch:
        """Up to CHECK_EVERY pairs: (how many, bytes left to charge, the pairs left or
        None). New keys and non-int values are charged here; ints cost 0 (shared) or ~28
        bytes each, so one sample of them is close enough and keeps the loop lean."""
        groups = self._groups
        get = groups.get
        count, key, value, charged, others, last_int = 0, None, None, 0, 0, 0
        switch = False  # a key that is no str: from it on, the buffer keys by encoded bytes
        try:
            for count, (key, value) in zip(range(1, CHECK_EVERY + 1), it, strict=False):  # noqa: B007 (read after)
                held = get(key)
                if held is not None:
                    held.append(value)
                elif type(key) is str:
                    groups[key] = [value]
                    # getsizeof costs 7x a len(): for ASCII (a flag test) the size is known
                    size = len(key) + ASCII_STR if key.isascii() else sys.getsizeof(key)
                    charged += size + KEY_OVERHEAD
                else:
                    switch = True
                    break
                if type(value) is int:
                    last_int = value
                else:
                    others += 1
                    charged += _size(value)
        except TypeError:
            if _hashable(key):
                raise  # not ours: e.g. the mapper yielded something other than a pair
            switch = True
        finally:
            self.used += charged
        if not switch:
            rest = it if count == CHECK_EVERY else None
            return count, _list_charge(count, count - others, last_int), rest
        count -= 1  # the pair that needs encoded keys (zip counted it) goes first after
        return count, _list_charge(count, count - others, last_int), self._switch(key, value, it)

    def _switch(
        self, key: Any, value: Any, it: Iterator[tuple[Any, Any]]
    ) -> Iterator[tuple[Any, Any]]:
        """Re-key the buffer by encoded keys; the pairs left, starting with (key, value)."""
        self._groups = {encode_json(k): held for k, held in self._groups.items()}
        self._encoded_keys = True
        return itertools.chain([(key, value)], it)

    def _add_encoded(self, it: Iterator[tuple[Any, Any]]) -> _Batch:
        groups = self._groups
        get = groups.get
        count, charged, others, last_int = 0, 0, 0, 0
        for count, (key, value) in zip(range(1, CHECK_EVERY + 1), it, strict=False):  # noqa: B007 (read after)
            raw = encode_json(key)
            held = get(raw)
            if held is None:
                groups[raw] = [value]
                charged += sys.getsizeof(raw) + KEY_OVERHEAD
            else:
                held.append(value)
            if type(value) is int:
                last_int = value
            else:
                others += 1
                charged += _size(value)
        self.used += charged
        rest = it if count == CHECK_EVERY else None
        return count, _list_charge(count, count - others, last_int), rest

    def _merge_str_keyed(self, it: Iterator[tuple[Any, Any]]) -> _Batch:
        """_add_str_keyed for a reduce_by combiner: a key's value is folded in place."""
        groups = self._groups
        get, merge = groups.get, self.merge
        assert merge is not None
        count, key, value, charged = 0, None, None, 0
        switch = False
        try:
            for count, (key, value) in zip(range(1, CHECK_EVERY + 1), it, strict=False):  # noqa: B007 (read after)
                held = get(key, _MISSING)
                if held is not _MISSING:
                    groups[key] = self._folded(merge, held, key, value)
                elif type(key) is str:
                    groups[key] = value
                    size = len(key) + ASCII_STR if key.isascii() else sys.getsizeof(key)
                    charged += size + KEY_OVERHEAD
                else:
                    switch = True
                    break
                if type(value) is not int:  # a folded value may grow by about this much
                    charged += _size(value)
        except TypeError:
            if _hashable(key):
                raise
            switch = True
        finally:
            self.used += charged
        if not switch:
            return count, 0, it if count == CHECK_EVERY else None
        return count - 1, 0, self._switch(key, value, it)

    def _merge_encoded(self, it: Iterator[tuple[Any, Any]]) -> _Batch:
        groups = self._groups
        get, merge = groups.get, self.merge
        assert merge is not None
        count, charged = 0, 0
        for count, (key, value) in zip(range(1, CHECK_EVERY + 1), it, strict=False):  # noqa: B007 (read after)
            raw = encode_json(key)
            held = get(raw, _MISSING)
            if held is _MISSING:
                groups[raw] = value
                charged += sys.getsizeof(raw) + KEY_OVERHEAD + _size(value)
            else:
                groups[raw] = self._folded(merge, held, key, value)
                if type(value) is not int:
                    charged += _size(value)
        self.used += charged
        return count, 0, it if count == CHECK_EVERY else None

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
        for raw in sorted(order):
            prefix = raw + TAB
            out[crc32(raw) % n].extend([prefix + encode(v) for v in pop(order[raw])])

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
            pairs = self._combined(combiner, keys, values)
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

    def _combined(self, combiner: Combiner, keys: list[Any], values: list[list[Any]]) -> list[Any]:
        pending = iter(keys)
        try:
            return list(itertools.chain.from_iterable(map(combiner, pending, map(iter, values))))
        except Exception as exc:  # map took the failing key last: what is left comes after it
            failed = keys[len(keys) - operator.length_hint(pending) - 1]
            raise raised_on_key(self.combiner_name, exc, failed) from exc

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
        for line, hashed in zip(lines, map(zlib.crc32, raws), strict=True):
            appends[hashed % n](line)


class _Emitted:
    """Names a combiner's output value the shuffle cannot carry, with its key."""

    def __init__(self, keys: list[Any]) -> None:
        self.keys = keys

    def __call__(self, index: int, value: Any) -> str:
        return f"emitted {value!r} for key {self.keys[index]!r}"


_UTF8, _SURROGATEESCAPE = itertools.repeat("utf-8"), itertools.repeat("surrogateescape")


def _list_charge(added: int, ints: int, last_int: int) -> int:
    """Bytes of `added` values held in lists that their loop did not charge: the list
    slots, and the int values (sampled: 0 for small shared ints, ~28 bytes otherwise)."""
    return added * VALUE_SLOT + ints * _size(last_int)


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
