"""A task attempt's working folder for a job with shipped files (Hadoop's task working
directory with its distributed-cache links).

The worker downloads the staged files into a new temporary folder and runs the attempt
there (lifecycle setup, mapper, combiner, reducer: commands and Python callables alike),
so that `open("lookup.tsv")` finds a shipped file. Every other entry of the folder the
worker started in (the job's folder locally, the image's WORKDIR in a pod) is linked into
it, so relative paths of commands and code resolve as they did; a shipped file wins over
an entry of the same name. The folder is removed when the attempt ends, however it ends.
Jobs without shipped files run where the worker started, as before.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from airflow_mapreduce.errors import TaskFailedError
from airflow_mapreduce.plan.tasks import StagedFile
from airflow_mapreduce.storage import FileSystems

COPY_BUFFER = 1 << 20


@contextlib.contextmanager
def task_working_folder(files: FileSystems, staged: list[StagedFile]) -> Iterator[str | None]:
    """Run the block in a working folder holding `staged`; yield its path (None, and no
    change of folder, when there is nothing to ship)."""
    if not staged:
        yield None
        return
    start = os.getcwd()
    folder = tempfile.mkdtemp(prefix="amr-task-")
    try:
        for item in staged:
            _download(files, item, os.path.join(folder, item.name))
        _link_entries(start, folder, {item.name for item in staged})
        os.chdir(folder)
        try:
            yield folder
        finally:
            os.chdir(start)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # removes links, never what they point to


def _download(files: FileSystems, item: StagedFile, path: str) -> None:
    try:
        with files.open_read(item.uri) as source, open(path, "xb") as out:
            shutil.copyfileobj(source, out, COPY_BUFFER)
    except FileNotFoundError:
        raise TaskFailedError(
            f"shipped file {item.name!r}: {item.uri} is gone from the run's work area (the "
            "run was committed or cleaned up meanwhile?); run the job again"
        ) from None
    size = os.path.getsize(path)
    if size != item.size:
        raise TaskFailedError(
            f"shipped file {item.name!r}: {item.uri} holds {size} bytes, the plan staged "
            f"{item.size}; the work area was changed under the run: run the job again"
        )
    os.chmod(path, 0o755 if item.executable else 0o644)


def _link_entries(start: str, folder: str, shipped: set[str]) -> None:
    """Link every entry of `start` into `folder`, but shipped names and `folder` itself
    (when it lies in `start`)."""
    own = os.path.realpath(folder)
    try:
        entries = list(os.scandir(start))
    except OSError:  # an unreadable start folder: the shipped files alone
        return
    for entry in entries:
        if entry.name in shipped or os.path.realpath(entry.path) == own:
            continue
        os.symlink(entry.path, os.path.join(folder, entry.name))
