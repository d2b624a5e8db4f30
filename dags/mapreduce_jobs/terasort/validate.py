#!/usr/bin/env python3
"""TeraValidate for the terasort example: the output is globally sorted and holds exactly
the input's records.

Per part: its record count, a checksum (the sum of the crc32 of each record), its first
and last key, and whether its keys never decrease. Then: each part's first key is not
below the previous part's last key (parts in partition order), and the count and checksum
of all parts equal the input's. Keys are the text before the first TAB, compared as bytes
(the terasort job's order).

    python3 validate.py OUTPUT [INPUT]    # URIs or paths; INPUT default: the manifest's

Exit status 0 when valid; otherwise 1, naming the first problem.
"""

from __future__ import annotations

import json
import sys
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from airflow_mapreduce.plan.splits import list_input
from airflow_mapreduce.storage import FileSystems, join_uri, resolve_uri

READ = 1 << 20


@dataclass
class Summary:
    """What TeraValidate keeps of a file of records."""

    records: int = 0
    checksum: int = 0  # sum of crc32 of each record (its line without LF), mod 2**64
    first_key: bytes | None = None
    last_key: bytes | None = None
    unsorted_at: int | None = None  # the first record whose key is below the one before it

    def add(self, lines: Iterable[bytes]) -> None:
        for line in lines:
            key = line.partition(b"\t")[0]
            if self.first_key is None:
                self.first_key = key
            elif self.unsorted_at is None and self.last_key is not None and key < self.last_key:
                self.unsorted_at = self.records
            self.last_key = key
            self.records += 1
            self.checksum = (self.checksum + zlib.crc32(line)) & 0xFFFFFFFFFFFFFFFF


def lines_of(files: FileSystems, uri: str) -> Iterator[list[bytes]]:
    """The lines (without LF) of an object, a list per block read."""
    tail = b""
    with files.open_read(uri) as f:
        while block := f.read(READ):
            lines = (tail + block).split(b"\n")
            tail = lines.pop()
            yield lines
    if tail:
        yield [tail]


def summarize(files: FileSystems, uris: Iterable[str]) -> Summary:
    summary = Summary()
    for uri in uris:
        for lines in lines_of(files, uri):
            summary.add(lines)
    return summary


def validate(output: str, input: str | None = None, files: FileSystems | None = None) -> list[str]:
    """Problems found in `output` (a committed job output) against `input`; [] if valid.

    Parts are the ones `_manifest.json` lists, in partition order; `input` defaults to
    the manifest's input."""
    files = files or FileSystems()
    output = resolve_uri(output, Path.cwd())
    manifest = json.loads(files.read_bytes(join_uri(output, "_manifest.json")))
    parts = sorted(manifest["files"], key=lambda part: part["partition"])
    problems = []
    total, previous = Summary(), None
    for part in parts:
        summary = summarize(files, [part["uri"]])
        name = part["uri"].rsplit("/", 1)[-1]
        if summary.unsorted_at is not None:
            problems.append(f"{name}: record {summary.unsorted_at} is below the one before it")
        last = previous.last_key if previous is not None else None
        if last is not None and summary.first_key is not None and summary.first_key < last:
            problems.append(
                f"{name}: first key {summary.first_key!r} is below the last key {last!r} "
                "of the part before it"
            )
        if summary.records:
            previous = summary
        total.records += summary.records
        total.checksum = (total.checksum + summary.checksum) & 0xFFFFFFFFFFFFFFFF
    found, _ = list_input(files, resolve_uri(input or manifest["input_uri"], Path.cwd()))
    expected = summarize(files, sorted(found))
    if (total.records, total.checksum) != (expected.records, expected.checksum):
        problems.append(
            f"output holds {total.records} records (checksum {total.checksum:016x}), the input "
            f"{expected.records} (checksum {expected.checksum:016x}): records were lost, "
            "duplicated or changed"
        )
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2:
        print(__doc__, file=sys.stderr)
        return 2
    problems = validate(*args)
    for problem in problems:
        print(f"INVALID: {problem}", file=sys.stderr)
    if not problems:
        print(f"valid: {args[0]} is globally sorted and holds exactly the input's records")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
