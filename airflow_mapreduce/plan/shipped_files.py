"""The plan's part of shipped files: check every source, then stage a copy of each into
the run's work area (plan/layout.py), where every task, pod or process, can read it: a
pod cannot read the disk of the machine that planned, and a copy taken once per run gives
every task the same bytes even if a source changes meanwhile.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from airflow_mapreduce.errors import PlanError, PlanRefusedError
from airflow_mapreduce.job.shipped_files import MAX_SHIPPED_BYTES, ShippedFile, too_large_message
from airflow_mapreduce.plan.layout import RunLayout
from airflow_mapreduce.plan.tasks import StagedFile
from airflow_mapreduce.storage import FileSystems, UnsafeUriError, resolve_uri


@dataclass(frozen=True)
class ShippedSource:
    name: str
    uri: str  # canonical
    size: int
    executable: bool


def survey_shipped_files(files: FileSystems, entries: list[ShippedFile]) -> list[ShippedSource]:
    """Each entry's source, checked: a file that exists, and all of them within the size
    limit. Errors name the entry (files[i])."""
    sources = []
    for index, entry in enumerate(entries):
        where = f"files[{index}] ({entry.target})"
        try:
            uri = resolve_uri(entry.source, None)
        except UnsafeUriError as exc:
            raise PlanRefusedError(f"{where}: {exc}") from None
        fs = files.fs(uri)
        if not fs.exists(uri):
            raise PlanError(
                f"{where}: shipped file {uri} does not exist; create it or fix the job's "
                "files entry (relative paths are taken from the job file's folder)"
            )
        if not fs.isfile(uri):
            raise PlanRefusedError(f"{where}: {uri} is a folder; a shipped file is one file")
        sources.append(ShippedSource(entry.target, uri, files.size(uri), _executable(uri)))
    total = sum(source.size for source in sources)
    if total > MAX_SHIPPED_BYTES:
        largest = max(sources, key=lambda source: source.size)
        raise PlanRefusedError(
            f"files: {too_large_message(total)} (largest: {largest.name}, {largest.size} bytes)"
        )
    return sources


def stage_shipped_files(
    files: FileSystems, sources: list[ShippedSource], layout: RunLayout
) -> list[StagedFile]:
    """Copy each source into the run's work area (server-side within one object store);
    what the task specs carry."""
    staged = []
    for source in sources:
        uri = layout.shipped_file_uri(source.name)
        files.copy(source.uri, uri)
        # The copy's size, which the worker checks: the source may have changed since.
        size = files.size(uri)
        staged.append(
            StagedFile(name=source.name, uri=uri, size=size, executable=source.executable)
        )
    return staged


def _executable(uri: str) -> bool:
    """A local file with an execute bit (a shipped script); objects in stores keep no mode."""
    if not uri.startswith("file://"):
        return False
    return bool(os.stat(uri.removeprefix("file://")).st_mode & 0o111)
