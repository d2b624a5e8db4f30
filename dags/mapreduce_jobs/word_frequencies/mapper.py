#!/usr/bin/env python3
"""wordcount's output lines word<TAB>count -> count<TAB>1 (how many words occur count times)."""

import sys

for line in sys.stdin:
    _word, count = line.rstrip("\n").rsplit("\t", 1)
    print(f"{count}\t1")
