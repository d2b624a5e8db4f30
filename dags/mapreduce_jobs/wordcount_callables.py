"""Word count as Python callables: plain generators of (key, value) pairs, mrjob style."""

from collections.abc import Iterable, Iterator


def mapper(_key: None, line: str) -> Iterator[tuple[str, int]]:
    for word in line.split():
        yield word, 1


def combiner(word: str, counts: Iterable[int]) -> Iterator[tuple[str, int]]:
    yield word, sum(counts)


def reducer(word: str, counts: Iterable[int]) -> Iterator[tuple[str, int]]:
    yield word, sum(counts)
