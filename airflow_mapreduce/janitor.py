"""Find and delete the intermediate data old runs left in a work area.

A run's work area is <work>/<dag_id>/<run_id>/ (plan/layout.py). A committed run removes
its own; runs that failed, were cancelled or keep intermediates for debugging leave it
behind. A run counts as old when its newest object is older than the cut-off, so a run
that is still writing is never touched.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from airflow_mapreduce.storage import FileSystems, check_writable_root

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> dt.timedelta:
    """``90s``, ``30m``, ``12h``, ``7d``, ``2w``."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"expected a duration like 30m, 12h, 7d or 2w, found {text!r}")
    return dt.timedelta(seconds=int(match[1]) * _SECONDS[match[2]])


@dataclass(frozen=True)
class StaleRun:
    uri: str
    objects: int
    bytes: int
    last_modified: dt.datetime


def find_stale_runs(files: FileSystems, work_root: str, older_than: dt.timedelta) -> list[StaleRun]:
    """Run folders under work_root whose newest object is older than `older_than`."""
    check_writable_root(work_root, "work URI")
    cutoff = dt.datetime.now(dt.UTC) - older_than
    return [run for run in _runs(files, work_root) if run.last_modified < cutoff]


def delete_runs(files: FileSystems, runs: list[StaleRun]) -> None:
    for run in runs:
        files.remove(run.uri, recursive=True)


def _runs(files: FileSystems, work_root: str) -> Iterator[StaleRun]:
    for dag_dir in files.list_dir(work_root):
        for run_dir in files.list_dir(dag_dir):
            fs = files.fs(run_dir)
            try:
                infos = fs.find(run_dir, detail=True)
            except FileNotFoundError:
                continue
            if not isinstance(infos, dict) or not infos:
                continue  # a plain object at the run level is not a run folder
            yield StaleRun(
                uri=run_dir,
                objects=len(infos),
                bytes=sum(int(i.get("size") or 0) for i in infos.values()),
                last_modified=max(_modified(i) for i in infos.values()),
            )


def _modified(info: dict[str, Any]) -> dt.datetime:
    """Modification time from fsspec's info: S3 gives LastModified, local files mtime."""
    value = info.get("LastModified") or info.get("mtime") or info.get("last_modified")
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    # Unknown age: treat as new, so that nothing is deleted on a guess.
    return dt.datetime.now(dt.UTC)
