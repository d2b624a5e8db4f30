"""Cutting input objects into line-aligned byte-range splits and grouping them into tasks.

A split [offset, offset+length) owns every line that *starts* inside it (the reader skips
the partial first line and finishes the line crossing its end), so no record is lost or
read twice at a boundary. A compressed object cannot be cut and is one split.
"""

from __future__ import annotations

import heapq
import posixpath

from airflow_mapreduce.errors import PlanError
from airflow_mapreduce.plan.tasks import InputSplit
from airflow_mapreduce.storage import FileSystems

COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".xz": "xz"}


def is_hidden(uri: str) -> bool:
    """Hadoop's rule: names starting with '_' or '.' (e.g. _SUCCESS) are not input."""
    return posixpath.basename(uri.rstrip("/")).startswith(("_", "."))


def plan_splits(files: FileSystems, input_uri: str, split_size: int) -> list[InputSplit]:
    found = [uri for uri in files.find(input_uri) if not is_hidden(uri)]
    if not found:
        raise PlanError(
            f"input {input_uri} matched no objects; expected a file, a folder or prefix "
            "holding files, or a glob. Check the URI (and its templated date) and credentials."
        )
    splits: list[InputSplit] = []
    for uri in found:
        size = files.size(uri)
        if size == 0:
            continue  # no records to lose
        compression = COMPRESSIONS.get(posixpath.splitext(uri)[1].lower())
        if compression is not None:
            splits.append(InputSplit(uri=uri, offset=0, length=None, compression=compression))
            continue
        for offset in range(0, size, split_size):
            splits.append(InputSplit(uri=uri, offset=offset, length=min(split_size, size - offset)))
    return splits


def split_weight(split: InputSplit, files_sizes: dict[str, int]) -> int:
    return split.length if split.length is not None else files_sizes.get(split.uri, 1)


def group_splits(
    splits: list[InputSplit], max_tasks: int, sizes: dict[str, int]
) -> list[list[InputSplit]]:
    """At most max_tasks groups of nearly equal bytes (largest-first onto the lightest).

    Deterministic for the same input; each group keeps input order so a task reads its
    objects sequentially.
    """
    if max_tasks < 1:
        raise PlanError(f"max_map_tasks must be >= 1, found {max_tasks}")
    num_tasks = min(max_tasks, len(splits))
    order = sorted(range(len(splits)), key=lambda i: -split_weight(splits[i], sizes))
    heap = [(0, task) for task in range(num_tasks)]
    members: list[list[int]] = [[] for _ in range(num_tasks)]
    for i in order:
        load, task = heapq.heappop(heap)
        members[task].append(i)
        heapq.heappush(heap, (load + split_weight(splits[i], sizes), task))
    return [[splits[i] for i in sorted(group)] for group in members]
