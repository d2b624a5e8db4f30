"""Cutting input objects into line-aligned byte-range splits and grouping them into tasks.

A split [offset, offset+length) owns every line that *starts* inside it (the reader skips
the partial first line and finishes the line crossing its end), so no record is lost or
read twice at a boundary. A compressed object cannot be cut and is one split.
"""

from __future__ import annotations

import heapq
import posixpath
from collections.abc import Mapping

import fsspec

from airflow_mapreduce.errors import PlanError
from airflow_mapreduce.plan.tasks import InputSplit
from airflow_mapreduce.storage import FileSystems

COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".xz": "xz"}


def list_input(files: FileSystems, input_uri: str) -> tuple[list[str], list[str]]:
    """(input objects, skipped hidden objects) of a file, glob, folder or prefix.

    A file or glob is taken exactly as matched. Under a folder, names starting with '_' or
    '.' are skipped, as Hadoop and Spark do, so a previous job's output folder (with its
    _SUCCESS, _manifest.json, _temporary) reads as data only; the planner logs them.
    """
    sizes, skipped = input_sizes(files, input_uri)
    return list(sizes), skipped


def input_sizes(files: FileSystems, input_uri: str) -> tuple[dict[str, int], list[str]]:
    """list_input's objects with their sizes, from the listing (as Hadoop's listStatus)."""
    found = files.find_sizes(input_uri)
    if fsspec.core.has_magic(input_uri) or list(found) == [input_uri]:
        return found, []
    root = input_uri.rstrip("/") + "/"
    inputs: dict[str, int] = {}
    skipped: list[str] = []
    for uri, size in found.items():
        relative = uri[len(root) :] if uri.startswith(root) else posixpath.basename(uri)
        if any(part.startswith(("_", ".")) for part in relative.split("/")):
            skipped.append(uri)
        else:
            inputs[uri] = size
    return inputs, skipped


def plan_splits(files: FileSystems, input_uri: str, split_size: int) -> list[InputSplit]:
    """Line-aligned splits of everything the input URI names; fails if it names nothing."""
    sizes, skipped = input_sizes(files, input_uri)
    require_input(input_uri, list(sizes), skipped)
    return splits_of(sizes, split_size)


def require_input(input_uri: str, found: list[str], skipped: list[str]) -> None:
    if not found:
        hidden = f" (only hidden objects: {', '.join(skipped[:5])})" if skipped else ""
        raise PlanError(
            f"input {input_uri} matched no objects{hidden}; expected a file, a folder or "
            "prefix holding files, or a glob. Check the URI (and its templated date) and "
            "credentials."
        )


def splits_of(sizes: Mapping[str, int], split_size: int, input_index: int = 0) -> list[InputSplit]:
    """Line-aligned splits of the given objects and their sizes (see input_sizes), of the
    job's input number `input_index`."""
    splits: list[InputSplit] = []
    for uri, size in sizes.items():
        if size == 0:
            continue  # no records to lose
        compression = compression_of(uri)
        if compression is not None:
            splits.append(
                InputSplit(
                    uri=uri, input=input_index, offset=0, length=None, compression=compression
                )
            )
            continue
        for offset in range(0, size, split_size):
            length = min(split_size, size - offset)
            splits.append(InputSplit(uri=uri, input=input_index, offset=offset, length=length))
    return splits


def compression_of(uri: str) -> str | None:
    """The codec an object's name says it is compressed with (.gz, .bz2, .zst, .xz)."""
    dot = uri.rfind(".")  # (posixpath.splitext's work without its cost, per object)
    if dot <= uri.rfind("/"):
        return None
    return COMPRESSIONS.get(uri[dot:].lower())


def split_weight(split: InputSplit, files_sizes: dict[str, int]) -> int:
    return split.length if split.length is not None else files_sizes.get(split.uri, 1)


def group_splits(
    splits: list[InputSplit], max_tasks: int, sizes: dict[str, int], target_bytes: int
) -> list[list[InputSplit]]:
    """Groups of nearly equal bytes (largest-first onto the lightest): no more than
    max_tasks, and no more than one per target_bytes of input, so many small objects
    share a task instead of paying a task (a pod) each.

    Deterministic for the same input; each group keeps input order so a task reads its
    objects sequentially.
    """
    if max_tasks < 1:
        raise PlanError(f"max_map_tasks must be >= 1, found {max_tasks}")
    total = sum(split_weight(s, sizes) for s in splits)
    num_tasks = max(1, min(max_tasks, len(splits), -(-total // target_bytes)))
    order = sorted(range(len(splits)), key=lambda i: -split_weight(splits[i], sizes))
    heap = [(0, task) for task in range(num_tasks)]
    members: list[list[int]] = [[] for _ in range(num_tasks)]
    for i in order:
        load, task = heapq.heappop(heap)
        members[task].append(i)
        heapq.heappush(heap, (load + split_weight(splits[i], sizes), task))
    return [[splits[i] for i in sorted(group)] for group in members]
