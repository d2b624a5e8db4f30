"""Word count as Python callables: plain generators of (key, value) pairs, mrjob style.

Counts arrive as ints when every step is a callable, and as text when a streaming
command takes part (Hadoop Streaming is text), so int() accepts both.
"""

from collections.abc import Iterable, Iterator


def mapper(_key: None, line: str) -> Iterator[tuple[str, int]]:
    for word in line.split():
        yield word, 1


def combiner(word: str, counts: Iterable[int | str]) -> Iterator[tuple[str, int]]:
    yield word, sum(int(c) for c in counts)


def reducer(word: str, counts: Iterable[int | str]) -> Iterator[tuple[str, int]]:
    yield word, sum(int(c) for c in counts)
