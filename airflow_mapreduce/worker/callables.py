"""Loading user Python callables (``module:function``) with errors that say how to fix."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable
from typing import Any

from airflow_mapreduce.errors import TaskFailedError

PairGenerator = Callable[..., Iterable[tuple[Any, Any]]]


def load_callable(reference: str, role: str) -> PairGenerator:
    module_name, _, attribute = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TaskFailedError(
            f"{role} {reference!r}: cannot import module {module_name!r} ({exc}). It must be "
            "importable by the worker: in the job's folder (local backend) or the image."
        ) from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise TaskFailedError(
            f"{role} {reference!r}: module {module_name!r} has no function {attribute!r}"
        )
    return function  # type: ignore[no-any-return]


class ReduceBy:
    """A reduce_by function as a reducer: each key's values folded into one with f(a, b).

    Where a Python combiner or reducer would run, this runs; the sort buffer and the
    reduce task fold with `function` directly instead, without a call per key.
    """

    def __init__(self, function: Callable[[Any, Any], Any]) -> None:
        self.function = function

    def __call__(self, key: Any, values: Iterable[Any]) -> tuple[tuple[Any, Any]]:
        return ((key, functools.reduce(self.function, values)),)


def identity_mapper(key: Any, value: Any) -> Iterable[tuple[Any, Any]]:
    """The mapper of a later step that names none: each record passes on unchanged."""
    yield key, value
