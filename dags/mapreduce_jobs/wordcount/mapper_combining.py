#!/usr/bin/env python3
"""Word-count mapper with in-mapper combining: counts words in a dict and writes
"word<TAB>count" lines, so the shuffle sees each word about once per block of input.

Lines are read about 1 MB at a time and counted by C loops (no Python step per line or
word). The dict is written out and cleared whenever it holds MAX_WORDS words, which
bounds the mapper's memory whatever the input.
"""

import sys
from collections import Counter
from itertools import chain

MAX_WORDS = 200_000
BLOCK_BYTES = 1 << 20

sys.stdin.reconfigure(errors="surrogateescape")
sys.stdout.reconfigure(errors="surrogateescape")
counts: Counter[str] = Counter()


def flush() -> None:
    sys.stdout.writelines(f"{word}\t{count}\n" for word, count in counts.items())
    counts.clear()


while lines := sys.stdin.readlines(BLOCK_BYTES):
    counts.update(chain.from_iterable(map(str.split, lines)))
    if len(counts) >= MAX_WORDS:
        flush()
flush()
