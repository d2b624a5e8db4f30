#!/usr/bin/env python3
"""Word-count reducer that accumulates a dict: needs no particular input order."""

import sys

counts = {}
for line in sys.stdin:
    word, _, count = line.rstrip("\n").partition("\t")
    counts[word] = counts.get(word, 0) + int(count)
for word, count in counts.items():
    print(f"{word}\t{count}")
