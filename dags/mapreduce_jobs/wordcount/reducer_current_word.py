#!/usr/bin/env python3
"""The classic "current_word" reducer: relies on input sorted and grouped by key."""

import sys

current_word = None
current_count = 0
for line in sys.stdin:
    word, count = line.rstrip("\n").split("\t", 1)
    count = int(count)
    if word == current_word:
        current_count += count
    else:
        if current_word is not None:
            print(f"{current_word}\t{current_count}")
        current_word = word
        current_count = count
if current_word is not None:
    print(f"{current_word}\t{current_count}")
