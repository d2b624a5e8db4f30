"""The YAML DAG factory: every job YAML under a folder becomes a DAG, or an import error.

One broken file never hides the others: valid jobs are registered, and all problems are
reported together through one placeholder DAG that fails validation, which Airflow records
as an import error of the loader file naming each bad YAML (file:line:col, field, fix).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Param

from airflow_mapreduce.airflow.task_group import add_mapreduce_tasks
from airflow_mapreduce.errors import InvalidJobFilesError, JobSpecError
from airflow_mapreduce.spec.loader import load_job_file
from airflow_mapreduce.spec.models import JobSpec

INVALID_JOBS_DAG_ID = "airflow_mapreduce_invalid_jobs"
YAML_SUFFIXES = (".yaml", ".yml")


def build_dag(job: JobSpec, *, job_dir: str | None = None) -> DAG:
    """A DAG for one job; params input/output/reducers can be overridden per run (conf)."""
    start = (
        pendulum.datetime(job.start_date.year, job.start_date.month, job.start_date.day, tz="UTC")
        if job.start_date
        else None
    )
    params = {
        "input": Param(job.input.uri, type="string", description="Input URI (may be templated)."),
        "output": Param(job.output, type="string", description="Output URI (may be templated)."),
        "reducers": Param(
            job.reducers,
            type="integer",
            minimum=0 if job.map_only else 1,
            maximum=0 if job.map_only else 100_000,
            description="Number of reduce partitions.",
        ),
    }
    with DAG(
        dag_id=job.dag_id,
        description=job.description,
        schedule=job.schedule,
        start_date=start,
        catchup=job.catchup,
        tags=sorted({"mapreduce", *job.tags}),
        params=params,
        default_args={
            "retries": job.retries,
            "retry_delay": dt.timedelta(seconds=job.retry_delay_seconds),
        },
    ) as dag:
        add_mapreduce_tasks(
            job,
            job_dir=job_dir,
            input_uri="{{ params.input }}",
            output_uri="{{ params.output }}",
            num_reducers="{{ params.reducers }}",
        )
    return dag


def job_files(folder: Path) -> list[Path]:
    """YAML files under `folder`, skipping hidden and underscore-prefixed names."""
    folder = folder.resolve()
    return sorted(
        path
        for path in folder.rglob("*")
        if path.suffix in YAML_SUFFIXES
        and path.is_file()
        and not any(part.startswith((".", "_")) for part in path.relative_to(folder).parts)
    )


def load_yaml_dags(folder: str | Path, namespace: MutableMapping[str, Any]) -> list[DAG]:
    """Register a DAG in `namespace` (a DAG file's globals()) for each job YAML in `folder`.

    `folder` may be a file path (pass ``__file__``): its folder is used.
    """
    root = Path(folder).resolve()
    if root.is_file():
        root = root.parent
    dags: list[DAG] = []
    problems: list[str] = []
    origin: dict[str, Path] = {}
    for path in job_files(root):
        try:
            job = load_job_file(path)
        except JobSpecError as exc:
            problems.append(str(exc))
            continue
        if job.dag_id in origin:
            problems.append(
                f"{path}: dag_id {job.dag_id!r} is already used by {origin[job.dag_id]}; "
                "every job needs its own dag_id"
            )
            continue
        origin[job.dag_id] = path
        dag = build_dag(job, job_dir=str(path.parent))
        namespace[job.dag_id] = dag
        dags.append(dag)
    if problems:
        namespace[INVALID_JOBS_DAG_ID] = _invalid_jobs_dag(problems)
    return dags


class _InvalidJobs(DAG):
    """Carries YAML problems into Airflow's import errors without hiding valid DAGs."""

    def validate(self) -> None:
        problems = (self.doc_md or "").split("\n\n")
        raise InvalidJobFilesError(problems)


def _invalid_jobs_dag(problems: Iterable[str]) -> DAG:
    return _InvalidJobs(dag_id=INVALID_JOBS_DAG_ID, schedule=None, doc_md="\n\n".join(problems))
