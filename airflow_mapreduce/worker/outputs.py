"""Writing a job's final output parts: text or JSON lines, optionally compressed."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import itertools
import json
import operator
from collections.abc import Iterable, Iterator
from typing import IO, Any

from airflow_mapreduce.errors import RecordError
from airflow_mapreduce.job.dataplane import FormatSettings
from airflow_mapreduce.storage import FileSystems
from airflow_mapreduce.worker.codec import _text, decode_text

_FIRST, _SECOND = operator.itemgetter(0), operator.itemgetter(1)

SUFFIXES = {"gzip": ".gz", "bz2": ".bz2", "zstd": ".zst"}
BATCH = 1 << 16


class PartWriter:
    """Counts records and (uncompressed) bytes; batches small writes."""

    def __init__(self, out: IO[bytes], output_format: str, separator: bytes) -> None:
        self._out = out
        self._json = output_format == "jsonlines"
        self._separator = separator
        self._batch: list[bytes] = []
        self._size = 0
        self.records = 0
        self.bytes = 0

    def write_lines(self, lines: list[bytes]) -> None:
        """Text record lines key<separator>value (a streaming command's output)."""
        if self._json:
            for line in lines:
                key, _, value = line.partition(self._separator)
                self._add(_json_line(decode_text(key), decode_text(value)))
            return
        self._batch += lines
        self.records += len(lines)
        self._size += sum(map(len, lines)) + len(lines)
        if self._size >= BATCH:
            self.flush()

    def write_pairs(self, pairs: Iterable[tuple[Any, Any]]) -> None:
        """Python callables' pairs: str as is, anything else as JSON (str/int inline)."""
        key = value = None
        if self._json:
            try:
                for key, value in pairs:
                    self._add(_json_line(key, value))
            except (TypeError, ValueError) as exc:
                _name_unwritable(key, value, exc)
                raise
            return
        text, batch, size, records = _text, self._batch, self._size, 0
        try:
            for key, value in pairs:
                raw_key = key.encode("utf-8", "surrogateescape") if type(key) is str else text(key)
                line = (
                    b"%s\t%d" % (raw_key, value)
                    if type(value) is int
                    else (raw_key + b"\t" + text(value))
                )
                batch.append(line)
                records += 1
                size += len(line) + 1
                if size >= BATCH:
                    self._size = size
                    self.flush()
                    size = 0
        except (TypeError, ValueError) as exc:
            _name_unwritable(key, value, exc)
            raise
        finally:
            self._size = size
            self.records += records

    def write_pair_list(self, pairs: list[Any]) -> None:
        """write_pairs for a list: pairs as tuples go through write_columns' C loops."""
        if set(map(type, pairs)) == {tuple} and set(map(len, pairs)) == {2}:
            self.write_columns(list(map(_FIRST, pairs)), list(map(_SECOND, pairs)))
        else:
            self.write_pairs(pairs)

    def write_columns(self, keys: list[Any], values: list[Any]) -> None:
        """write_pairs for keys and values given as two lists. The common text output,
        str keys with int values, is formatted by C loops: no Python step per pair."""
        if self._json or set(map(type, keys)) != {str} or set(map(type, values)) != {int}:
            self.write_pairs(zip(keys, values, strict=True))
            return
        self.flush()  # lines written before these stay before them
        # One format call for all of them: a third faster than joining the pieces.
        pieces = tuple(itertools.chain.from_iterable(zip(keys, values, strict=True)))
        text = ("%s\t%d\n" * len(keys)) % pieces
        data = text.encode("utf-8", "surrogateescape")
        self._out.write(data)
        self.records += len(keys)
        self.bytes += len(data)

    def _add(self, line: bytes) -> None:
        self._batch.append(line)
        self._size += len(line) + 1
        self.records += 1
        if self._size >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self._batch:
            self._batch.append(b"")
            self._out.write(b"\n".join(self._batch))
            self.bytes += self._size
            self._batch.clear()
            self._size = 0


def _name_unwritable(key: Any, value: Any, exc: Exception) -> None:
    """Raise a RecordError naming the pair being written if it is what cannot be written
    (an error from elsewhere, e.g. a pair that is not one, is left as it is)."""
    for what, item in (("key", key), ("value", value)):
        try:
            _json_line(item, None)
        except (TypeError, ValueError):
            raise RecordError(
                f"cannot write the output pair ({key!r}, {value!r}): its {what} is not text or "
                f"JSON ({exc}); yield str, numbers, bool, None, or lists and dicts of them"
            ) from exc


def _json_line(key: Any, value: Any) -> bytes:
    return json.dumps(
        {"key": key, "value": value}, ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8", "surrogateescape")


def part_uri(base_uri: str, formats: FormatSettings) -> str:
    return base_uri + (SUFFIXES[formats.compression] if formats.compression else "")


@contextlib.contextmanager
def open_part(
    files: FileSystems, uri: str, formats: FormatSettings, separator: bytes = b"\t"
) -> Iterator[PartWriter]:
    """A PartWriter on `uri` (already carrying its suffix); published when the block exits."""
    with files.open_write(uri) as raw, _compressed(raw, formats.compression) as out:
        writer = PartWriter(out, formats.output, separator)
        yield writer
        writer.flush()


@contextlib.contextmanager
def _compressed(raw: IO[bytes], compression: str | None) -> Iterator[IO[bytes]]:
    if compression is None:
        yield raw
    elif compression == "gzip":
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            yield f  # type: ignore[misc]
    elif compression == "bz2":
        with bz2.BZ2File(raw, "wb") as f:
            yield f
    else:
        import zstandard

        with zstandard.ZstdCompressor().stream_writer(raw, closefd=False) as f:
            yield f
