"""Word count as Python callables: plain generators of (key, value) pairs, mrjob style.

Counts arrive as ints when every step is a callable, and as text when a streaming
command takes part (Hadoop Streaming is text), so int() accepts both.
"""

from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import chain

from airflow_mapreduce.worker.reporter import batch_mapper


def mapper(_key: None, line: str) -> Iterator[tuple[str, int]]:
    for word in line.split():
        yield word, 1


def combiner(word: str, counts: Iterable[int | str]) -> Iterator[tuple[str, int]]:
    yield word, sum(map(int, counts))


def reducer(word: str, counts: Iterable[int | str]) -> Iterator[tuple[str, int]]:
    yield word, sum(map(int, counts))


@batch_mapper
def mapper_batch(lines: list[str]) -> Counter[str]:
    """The opt-in batch form: one call per block of lines, counted in a Counter first
    (in-mapper combining: the shuffle sees each word once per block). The whole block is
    split and counted by C loops, with no Python step per line. A batch mapper may return
    pairs or, as here, a mapping of key -> value."""
    return Counter(chain.from_iterable(map(str.split, lines)))
