"""Reading a job's output back: part files, and word counts for comparison with an independent
collections.Counter (`input_counts`)."""

from __future__ import annotations

import collections
from collections.abc import Mapping
from pathlib import Path


def output_counts(folder: Path) -> collections.Counter[str]:
    """Word counts of every part file in an output folder (see word_counts)."""
    return word_counts(read_parts(folder))


def word_counts(parts: Mapping[str, bytes]) -> collections.Counter[str]:
    """word<TAB>count lines of {part name: bytes}; a word emitted twice is a failure."""
    counts: collections.Counter[str] = collections.Counter()
    for name, data in sorted(parts.items()):
        for line in data.decode().splitlines():
            word, count = line.split("\t")
            assert word not in counts, f"{word!r} emitted twice (again in {name})"
            counts[word] = int(count)
    return counts


def read_parts(folder: Path) -> dict[str, bytes]:
    """{part file name: its bytes} of an output folder."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob("part-*"))}


def input_counts(folder: Path) -> collections.Counter[str]:
    """The reference: collections.Counter over the whitespace-split text of every file."""
    counts: collections.Counter[str] = collections.Counter()
    for path in folder.iterdir():
        counts.update(path.read_text().split())
    return counts


def committed_names(parts: int) -> list[str]:
    """The sorted names in a committed output folder of `parts` reduce parts."""
    return ["_SUCCESS", "_job_history.json", "_manifest.json"] + [
        f"part-{index:05d}" for index in range(parts)
    ]
