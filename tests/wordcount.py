"""Reading word-count output back, for comparison with an independent collections.Counter."""

from __future__ import annotations

import collections
from pathlib import Path


def output_counts(folder: Path) -> collections.Counter[str]:
    """word<TAB>count lines of every part file; a word emitted twice is a failure."""
    counts: collections.Counter[str] = collections.Counter()
    for part in sorted(folder.glob("part-*")):
        for line in part.read_text().splitlines():
            word, count = line.split("\t")
            assert word not in counts, f"{word!r} emitted twice (again in {part.name})"
            counts[word] = int(count)
    return counts
