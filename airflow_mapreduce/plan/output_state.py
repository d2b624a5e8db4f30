"""What an output folder holds and who wrote it: a run replaces or deletes only its job's.

Like Hadoop's output committer, a job owns what an earlier run of it recorded in the
folder's _manifest.json (its parts and dead letters), that _manifest.json,
_job_history.json and _SUCCESS, what a commit of it named in the lease before writing
(output_lease), and the temporary files its own writers left when killed. Anything else
there would be lost if a run deleted or replaced it, or read as part of the result by the
next reader, so the plan and the commit refuse it and name it; a job that means to replace whatever
is there says so with ``overwrite_output: true``.

Hidden names ('_' or '.') that a run does not write are never touched: readers skip them
(another tool's _temporary/ or .crc files stay as they are).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from pydantic import Field, ValidationError

from airflow_mapreduce.job.base import Model
from airflow_mapreduce.plan.layout import MARKER_NAMES, OutputLayout
from airflow_mapreduce.plan.output_lease import read_lease
from airflow_mapreduce.plan.tasks import Counters, PartFile, PeakMemory
from airflow_mapreduce.storage import FileSystems, MissingObjectError, temporary_name_of

SHOWN = 20  # unknown objects named in a message


class OutputManifest(Model):
    dag_id: str
    run_id: str
    input_uri: str = Field(description="The job's (first) input.")
    input_uris: list[str] = Field(default_factory=list, description="Every input (inputs:).")
    output_uri: str
    files: list[PartFile]
    records: int
    bytes: int
    counters: Counters = Field(default_factory=dict)
    bad_records: list[str] = Field(
        default_factory=list, description="Dead-letter objects of skipped bad records."
    )
    peak_memory: dict[str, PeakMemory] = Field(
        default_factory=dict,
        description="Per phase (map, reduce): the largest peaks of its tasks, for sizing pods.",
    )
    history: str | None = Field(
        default=None, description="The run's _job_history.json: per task, what it did."
    )


@dataclass
class OutputContents:
    """An output folder sorted by owner, from the point of view of one job."""

    previous: OutputManifest | None = None  # the manifest of this job's earlier run
    owned: list[str] = field(default_factory=list)  # this job's: may be replaced or deleted
    leftovers: list[str] = field(default_factory=list)  # its writers' temporary files
    unknown: list[str] = field(default_factory=list)  # anyone else's: never touched


def read_output_manifest(files: FileSystems, output: OutputLayout) -> OutputManifest | None:
    """The folder's _manifest.json, or None if there is none or it is not ours."""
    try:
        return OutputManifest.model_validate_json(files.read_bytes(output.manifest_uri))
    except MissingObjectError:
        return None
    except ValidationError:
        return None  # another tool's file of that name


def survey_output(files: FileSystems, output: OutputLayout, dag_id: str) -> OutputContents:
    """Sort every object at the output's top level (and under _bad_records/) by owner."""
    found = OutputContents()
    manifest = read_output_manifest(files, output)
    if manifest is not None and manifest.dag_id == dag_id:
        found.previous = manifest
    ours = _recorded(found.previous, output)
    lease = read_lease(files, output)
    if lease is not None and lease.dag_id == dag_id:
        ours.update(lease.writing)  # a killed commit's, not yet in a manifest
    bad_records_root = output.bad_records_root.rstrip("/")
    for uri in files.list_dir(output.root):
        if uri.rstrip("/") == bad_records_root:
            for record_uri in files.list_dir(bad_records_root):
                _sort(found, record_uri, ours, hidden_is_ours=False)
        else:
            _sort(found, uri, ours, hidden_is_ours=True)
    return found


def _recorded(manifest: OutputManifest | None, output: OutputLayout) -> set[str]:
    if manifest is None:
        return set()
    return {
        *(part.uri for part in manifest.files),
        *manifest.bad_records,
        *output.markers,
    }


def _sort(found: OutputContents, uri: str, ours: set[str], *, hidden_is_ours: bool) -> None:
    name = posixpath.basename(uri.rstrip("/"))
    base = posixpath.dirname(uri.rstrip("/"))
    target = temporary_name_of(name)
    if uri in ours:
        found.owned.append(uri)
    elif target is not None and _ours_to_write(posixpath.join(base, target), target, ours):
        found.leftovers.append(uri)
    elif name in MARKER_NAMES or not name.startswith(("_", ".")):
        found.unknown.append(uri)  # data, or a marker a run of ours would replace
    elif not hidden_is_ours:
        found.unknown.append(uri)  # under _bad_records/, every name is one we may write
    # Other hidden names (_temporary/, _IN_PROGRESS, .crc files) are left as they are.


def _ours_to_write(uri: str, name: str, ours: set[str]) -> bool:
    """A name this job records or writes: its temporary file is a killed writer's."""
    return uri in ours or name in MARKER_NAMES or name.startswith("part-")


def describe_unknown(output_uri: str, unknown: list[str]) -> str:
    """The refusal: which objects, why, and the ways out."""
    names = ", ".join(posixpath.basename(u.rstrip("/")) for u in unknown[:SHOWN])
    more = f" and {len(unknown) - SHOWN} more" if len(unknown) > SHOWN else ""
    return (
        f"output {output_uri} holds {len(unknown)} object(s) that no earlier run of this job "
        f"recorded in its _manifest.json: {names}{more}. A run never deletes or replaces "
        "what it did not write: choose an empty or new output folder, move those objects "
        "away, or set 'overwrite_output: true' in the job to let runs replace them."
    )
