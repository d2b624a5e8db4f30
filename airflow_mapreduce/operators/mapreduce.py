"""MapReduceOperator: a whole MapReduce job as one node of any DAG.

It is a TaskGroup (as cosmos's DbtTaskGroup is) because a job is several Airflow tasks:
the plan, the map tasks mapped over the input's splits (dynamic task mapping), the
shuffle, the reduce tasks mapped over the partitions and the commit. A TaskGroup is what
Airflow offers for "one thing made of tasks": ``>>``/``<<`` connect to its first and last
tasks, the grid folds it into one row, it nests in other groups, and retries stay per
task (a failed map split is retried alone). ``.output`` is the commit's XCom: the URI of
the output's _manifest.json.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow.sdk import TaskGroup, XComArg
from pydantic import ValidationError

from airflow_mapreduce.airflow.task_group import MapReduceTasks, add_mapreduce_tasks
from airflow_mapreduce.errors import JobSpecError
from airflow_mapreduce.job.loader import (
    describe_validation_error,
    load_job_file,
    with_paths_resolved,
)
from airflow_mapreduce.job.models import JobSpec
from airflow_mapreduce.job.shipped_files import local_file_problems
from airflow_mapreduce.job.validators import CALLABLE, redact_uri


class MapReduceOperator(TaskGroup):
    """Run a MapReduce job: plan -> mapped map tasks -> shuffle -> mapped reduce tasks ->
    commit, on the job's backend (local processes, Kubernetes pods, or an Indexed Job
    pulling from a work queue).

    Give the job as keyword arguments (every field of a job YAML but the DAG's own:
    ``input``, ``mapper``, ``reducer``, ``reducers``, ``output``, ``backend``,
    ``kubernetes``, ...), or as ``job=`` (a JobSpec) or ``job_file=`` (a job YAML; other
    keyword arguments then override its fields). Errors are reported when the DAG file is
    parsed, with the field and the fix. Relative paths (input, output, commands) are taken
    from the folder of the file that creates the operator, or ``job_file``'s folder.

    :param task_id: the group's id; its tasks are ``<task_id>.plan``, ``<task_id>.map``...
    :param input: file, folder, glob or object prefix to read, e.g. ``s3://logs/{{ ds }}/``
        (templated). A mapping ``{"uri": ..., "split_size": "64MiB"}`` sets the split size.
    :param inputs: several inputs instead (Hadoop's MultipleInputs): URIs or mappings, each
        with its own ``mapper`` if it needs one (a reduce-side join).
    :param steps: a multi-step job (mrjob's MRStep): a list of mappings with ``mapper``,
        ``combiner``, ``reducer``, ``reducers`` and data-plane settings, instead of those
        at the top level; each step reads the one before's output.
    :param output: folder or prefix to write (templated).
    :param mapper: argv of a Hadoop Streaming command (a list, or one string split as a
        shell would), ``"package.module:function"`` of a Python generator, or the function.
    :param reducer: the same as ``mapper``; or ``{"reduce_by": "operator:add"}``.
    :param reducers: number of reduce partitions (templated); 0 makes a map-only job.
    :param parallelism: at most this many map tasks (templated; default ``max_map_tasks``).
    :param files: files copied into each task's working folder before its commands start:
        paths (relative as above) or URIs, or ``{"source": ..., "name": ...}`` mappings.
    :param job: a whole job, e.g. ``load_job_file(path).job()``.
    :param job_file: a job YAML file (its DAG settings are ignored here).
    :param job_dir: the folder relative paths are taken from, also those of a run's conf
        (default: the folder of the file creating the operator, or ``job_file``'s).
    """

    def __init__(
        self,
        *,
        task_id: str,
        job: JobSpec | None = None,
        job_file: str | Path | None = None,
        job_dir: str | Path | None = None,
        parallelism: int | str | None = None,
        prefix_group_id: bool = True,
        job_name: str | None = None,
        group_kwargs: dict[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        # The caller's frame only (inspect.stack() would read every frame's source: slow at
        # DAG-parse time, once per operator).
        caller = sys._getframe(1)
        filename, lineno = caller.f_code.co_filename, caller.f_lineno
        where = f"{filename}:{lineno}: MapReduceOperator(task_id={task_id!r})"
        here = Path(filename).resolve().parent
        if job is not None and job_file is not None:
            raise JobSpecError(where, [f"{where}: give job= or job_file=, not both"])
        if job_file is not None:
            job_file = here / job_file  # relative to the DAG file, like every other path
            job = load_job_file(job_file).job()
        job_dir = Path(job_dir or (job_file.parent if job_file is not None else here)).resolve()
        # A templated reducers ('{{ params.reducers }}') is checked when the plan renders it.
        reducers = fields.pop("reducers", None)
        if isinstance(reducers, str) and "{{" in reducers:
            num_reducers: int | str | None = reducers
        elif reducers is not None:
            fields["reducers"], num_reducers = reducers, None
        else:
            num_reducers = None
        if job is None or fields:
            base = _job_fields(job) if job is not None else {}
            job = _job({**base, **_shorthands(fields, base)}, where, job_dir)
        self.job = job
        super().__init__(group_id=task_id, prefix_group_id=prefix_group_id, **(group_kwargs or {}))
        with self:
            self.mapreduce_tasks: MapReduceTasks = add_mapreduce_tasks(
                job,
                job_dir=str(job_dir),
                job_name=job_name
                if job_name is not None
                else (task_id if prefix_group_id else None),
                num_reducers=num_reducers,
                max_map_tasks=parallelism,
            )

    @property
    def output(self) -> XComArg:
        """The URI of the committed output's _manifest.json (the commit task's XCom)."""
        return self.mapreduce_tasks.commit.output


def _job_fields(job: JobSpec) -> dict[str, Any]:
    return job.model_dump(include=set(JobSpec.model_fields), exclude_unset=True)


def _shorthands(fields: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Python spellings of YAML mappings: input as a URI (keeping the job's split size),
    steps as argv or functions."""
    given = _steps_of(dict(fields))
    if isinstance(given.get("input"), str):
        given["input"] = {**base.get("input", {}), "uri": given["input"]}
    if isinstance(given.get("inputs"), (list, tuple)):
        given["inputs"] = [
            {"uri": entry}
            if isinstance(entry, str)
            else _steps_of(entry)
            if isinstance(entry, dict)
            else entry
            for entry in given["inputs"]
        ]
    if isinstance(given.get("steps"), (list, tuple)):
        given["steps"] = [_steps_of(s) if isinstance(s, dict) else s for s in given["steps"]]
    return given


def _steps_of(fields: dict[str, Any]) -> dict[str, Any]:
    """A mapping's mapper/combiner/reducer in their Python spellings made YAML's."""
    given = dict(fields)
    for name in ("mapper", "combiner", "reducer"):
        if given.get(name) is not None:
            given[name] = _step(given[name])
    return given


def _step(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return {"command": list(value)}
    if isinstance(value, str):
        return {"callable": value} if CALLABLE.match(value) else {"command": value}
    if isinstance(value, Callable) and hasattr(value, "__module__"):  # type: ignore[arg-type]
        return {"callable": f"{value.__module__}:{value.__qualname__}"}
    return value


def _job(fields: dict[str, Any], where: str, job_dir: Path) -> JobSpec:
    try:
        job = JobSpec.model_validate(fields)
    except ValidationError as exc:
        raw = describe_validation_error(exc, where, {})
        problems = [redact_uri(p.replace(f"{where}:1:1: ", f"{where}: ")) for p in raw]
        raise JobSpecError(where, problems) from None
    job = with_paths_resolved(job, job_dir)
    if shipped := local_file_problems(job.files):
        problems = [f"{where}: {'.'.join(map(str, f))}: {message}" for f, message in shipped]
        raise JobSpecError(where, problems)
    return job
