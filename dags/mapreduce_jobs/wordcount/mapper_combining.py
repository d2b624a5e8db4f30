#!/usr/bin/env python3
"""Word-count mapper with in-mapper combining: counts words in a dict and writes
"word<TAB>count" lines, so the shuffle sees each word about once per block of input.

The dict is written out and cleared whenever it holds MAX_WORDS words, which bounds the
mapper's memory whatever the input.
"""

import sys
from collections import Counter

MAX_WORDS = 200_000

sys.stdin.reconfigure(errors="surrogateescape")
sys.stdout.reconfigure(errors="surrogateescape")
counts: Counter[str] = Counter()


def flush() -> None:
    sys.stdout.writelines(f"{word}\t{count}\n" for word, count in counts.items())
    counts.clear()


for line in sys.stdin:
    counts.update(line.split())
    if len(counts) >= MAX_WORDS:
        flush()
flush()
