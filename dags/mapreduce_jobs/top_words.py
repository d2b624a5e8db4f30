"""A two-step pipeline (mrjob's MRStep): count words, then keep the most frequent ones.

Step 1 is the word count. Step 2's mapper receives step 1's (word, count) records and
sends every one to a single key, so one reducer sees all the counts and keeps the top N
(TOP_WORDS, default 10) with a heap: memory for N words, not for every word.
"""

import heapq
import os
from collections.abc import Iterable, Iterator

TOP = "top"


def mapper(_key: None, line: str) -> Iterator[tuple[str, int]]:
    for word in line.split():
        yield word.lower(), 1


def sum_counts(word: str, counts: Iterable[int]) -> Iterator[tuple[str, int]]:
    yield word, sum(counts)


def to_one_key(word: str, count: int) -> Iterator[tuple[str, list[object]]]:
    yield TOP, [count, word]


def keep_top(_key: str, pairs: Iterable[list[object]]) -> Iterator[tuple[str, int]]:
    # Ties go to the word first in order, so the output is the same in every run.
    wanted = int(os.environ.get("TOP_WORDS", "10"))
    ranked = heapq.nsmallest(wanted, pairs, key=lambda pair: (-int(pair[0]), str(pair[1])))
    for count, word in ranked:
        yield str(word), int(count)
