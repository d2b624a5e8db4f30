"""What a task reads, in a few words: ``split 3: events.txt[0:64MiB]`` or ``partitions 2, 5``.

The label of a mapped task instance in Airflow's grid, of a row in the MapReduce view and
of the task in its manifest (``TaskManifest.source``).
"""

from __future__ import annotations

import posixpath

from airflow_mapreduce.plan.tasks import InputSplit, MapTaskSpec, TaskSpec

_SHOWN = 3  # partitions listed before "+N more"


def task_label(spec: TaskSpec) -> str:
    if isinstance(spec, MapTaskSpec):
        first = describe_split(spec.splits[0]) if spec.splits else "no input"
        more = f" +{len(spec.splits) - 1} more" if len(spec.splits) > 1 else ""
        return f"split {spec.task_index}: {first}{more}"
    partitions = sorted(spec.inputs)
    shown = ", ".join(str(p) for p in partitions[:_SHOWN])
    more = f" +{len(partitions) - _SHOWN} more" if len(partitions) > _SHOWN else ""
    noun = "partition" if len(partitions) == 1 else "partitions"
    return f"{noun} {shown}{more}"


def describe_split(split: InputSplit) -> str:
    name = posixpath.basename(split.uri.rstrip("/")) or split.uri
    if split.length is None:
        return f"{name} (whole file)"
    return f"{name}[{human_bytes(split.offset)}:{human_bytes(split.offset + split.length)}]"


def human_bytes(size: int) -> str:
    """64MiB, 1.5KiB, 312B: exact binary units when they divide, else one decimal."""
    if size == 0:
        return "0"
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            value = size / factor
            return f"{value:.0f}{unit}" if size % factor == 0 else f"{value:.1f}{unit}"
    return f"{size}B"
