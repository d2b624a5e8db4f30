"""One run at a time per output folder: a lease object, <output>/_IN_PROGRESS.

The plan takes the lease before any map task exists; a second run into the same output
fails fast while the first is still running, and nothing of the first is touched. A lease
whose run is over (failed, killed, or a CLI process that is gone) is taken over. The
commit checks the lease still names its run before it touches the output, so even two
plans racing past each other cannot both commit, and it releases the lease last.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Callable
from typing import Literal

from pydantic import Field, ValidationError

from airflow_mapreduce.errors import CommitError, PlanError
from airflow_mapreduce.job.base import Model
from airflow_mapreduce.plan.layout import OutputLayout
from airflow_mapreduce.storage import FileSystems, MissingObjectError


class OutputLease(Model):
    dag_id: str
    run_id: str
    runner: Literal["airflow", "cli"]
    host: str
    pid: int
    taken_at: dt.datetime
    writing: list[str] = Field(
        default_factory=list,
        description="Objects a commit of this job is about to write: a commit killed before "
        "its _manifest.json records them leaves them this job's, for the retry to replace.",
    )

    def describe(self) -> str:
        return (
            f"run {self.run_id} of {self.dag_id} ({self.runner} on {self.host}, pid "
            f"{self.pid}, since {self.taken_at:%Y-%m-%d %H:%M:%S} UTC)"
        )


IsRunning = Callable[[OutputLease], bool]


def process_is_running(lease: OutputLease) -> bool:
    """A lease of a process on this machine lives as long as the process; one taken on
    another machine cannot be checked from here and counts as running."""
    if lease.host != socket.gethostname():
        return True
    try:
        os.kill(lease.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def take_lease(
    files: FileSystems,
    output: OutputLayout,
    dag_id: str,
    run_id: str,
    runner: Literal["airflow", "cli"],
    is_running: IsRunning,
) -> None:
    held = read_lease(files, output)
    if held is not None and (held.dag_id, held.run_id) != (dag_id, run_id) and is_running(held):
        raise PlanError(
            f"output {output.root} is being written by {held.describe()}; two runs into one "
            f"output would destroy each other's results. Wait for that run to finish, give "
            f"this run another output, or, if that run is gone and will not resume, delete "
            f"{output.lease_uri}."
        )
    lease = OutputLease(
        dag_id=dag_id,
        run_id=run_id,
        runner=runner,
        host=socket.gethostname(),
        pid=os.getpid(),
        taken_at=dt.datetime.now(dt.UTC),
        # What a killed commit of this job was writing stays this job's to replace.
        writing=held.writing if held is not None and held.dag_id == dag_id else [],
    )
    files.write_bytes(output.lease_uri, lease.model_dump_json().encode())


def record_writing(
    files: FileSystems, output: OutputLayout, dag_id: str, run_id: str, uris: list[str]
) -> None:
    """Before the commit writes into the output: name what it is about to write."""
    held = read_lease(files, output)
    if held is None or (held.dag_id, held.run_id) != (dag_id, run_id):
        check_lease(files, output, dag_id, run_id)  # another's: refuse; none: take it back
        held = OutputLease(
            dag_id=dag_id,
            run_id=run_id,
            runner="cli",
            host=socket.gethostname(),
            pid=os.getpid(),
            taken_at=dt.datetime.now(dt.UTC),
        )
    writing = sorted({*held.writing, *uris})
    lease = held.model_copy(update={"writing": writing})
    files.write_bytes(output.lease_uri, lease.model_dump_json().encode())


def check_lease(files: FileSystems, output: OutputLayout, dag_id: str, run_id: str) -> None:
    """The commit's check: no other run has taken the output since this run's plan."""
    held = read_lease(files, output)
    if held is not None and (held.dag_id, held.run_id) != (dag_id, run_id):
        raise CommitError(
            f"output {output.root} was taken over by {held.describe()} after this run "
            f"planned; this run's results stay in its work folder and the output is left "
            f"to that run. Rerun this run (clear its plan task) once that one is done."
        )


def release_lease(files: FileSystems, output: OutputLayout, dag_id: str, run_id: str) -> None:
    held = read_lease(files, output)
    if held is not None and (held.dag_id, held.run_id) == (dag_id, run_id):
        files.remove(output.lease_uri)


def read_lease(files: FileSystems, output: OutputLayout) -> OutputLease | None:
    try:
        return OutputLease.model_validate_json(files.read_bytes(output.lease_uri))
    except MissingObjectError:
        return None
    except ValidationError as exc:
        raise PlanError(
            f"{output.lease_uri} is not a lease this tool wrote ({exc.error_count()} "
            "problem(s)); if no run is writing the output, delete it"
        ) from None
