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
from airflow_mapreduce.errors import InvalidJobFilesError
from airflow_mapreduce.spec.folder import job_files, load_jobs
from airflow_mapreduce.spec.models import JobSpec, as_utc_datetime
from airflow_mapreduce.spec.validators import URI_PATTERN

INVALID_JOBS_DAG_ID = "airflow_mapreduce_invalid_jobs"


def build_dag(job: JobSpec, *, job_dir: str | None = None) -> DAG:
    """A DAG for one job; params input/output/reducers/parallelism can be set per run.

    The params' JSON Schema applies the YAML's rules to a run's conf, so the Trigger DAG
    form and ``POST /api/v2/dags/{dag_id}/dagRuns`` reject a bad override up front.
    """
    with DAG(
        dag_id=job.dag_id,
        description=job.description,
        schedule=job.schedule,
        start_date=_utc(job.start_date),
        end_date=_utc(job.end_date),
        catchup=job.catchup,
        tags=sorted({"mapreduce", *job.tags}),
        max_active_runs=job.max_active_runs,  # None: the deployment's default
        dagrun_timeout=job.dagrun_timeout,
        params=run_params(job),
        default_args=_default_args(job),
        doc_md=job.description,
    ) as dag:
        add_mapreduce_tasks(
            job,
            job_dir=job_dir,
            input_uri="{{ params.input }}",
            output_uri="{{ params.output }}",
            num_reducers="{{ params.reducers }}",
            max_map_tasks="{{ params.parallelism }}",
        )
    return dag


def run_params(job: JobSpec) -> dict[str, Param]:
    """The Trigger DAG form: what a run may override, with the YAML's values as defaults."""
    uri_rule: dict[str, Any] = {"type": "string", "minLength": 1, "pattern": URI_PATTERN}
    return {
        "input": Param(
            job.input.uri,
            **uri_rule,
            title="Input",
            description="File, folder, glob or s3:// prefix to read; may hold {{ ds }}.",
        ),
        "output": Param(
            job.output,
            **uri_rule,
            title="Output",
            description="Folder or s3:// prefix to write; may hold {{ ds }}.",
        ),
        "reducers": Param(
            job.reducers,
            type="integer",
            minimum=0 if job.map_only else 1,
            maximum=0 if job.map_only else 100_000,
            title="Reducers",
            description="Number of reduce partitions (output part files).",
        ),
        "parallelism": Param(
            job.max_map_tasks,
            type="integer",
            minimum=1,
            maximum=100_000,
            title="Parallelism",
            description="At most this many map tasks; the input's splits are grouped into them.",
        ),
    }


def _default_args(job: JobSpec) -> dict[str, Any]:
    args: dict[str, Any] = {
        "owner": job.owner,
        "retries": job.retries,
        "retry_delay": dt.timedelta(seconds=job.retry_delay_seconds),
    }
    if job.email and job.email_on_failure:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        args["on_failure_callback"] = [SmtpNotifier(to=job.email)]
    return args


def _utc(value: dt.date | dt.datetime | None) -> pendulum.DateTime | None:
    return None if value is None else pendulum.instance(as_utc_datetime(value))


def load_yaml_dags(folder: str | Path, namespace: MutableMapping[str, Any]) -> list[DAG]:
    """Register a DAG in `namespace` (a DAG file's globals()) for each job YAML in `folder`.

    `folder` may be a file path (pass ``__file__``): its folder is used.
    """
    root = Path(folder).resolve()
    if root.is_file():
        root = root.parent
    loaded = load_jobs(job_files(root))
    dags: list[DAG] = []
    for path, job in loaded.jobs.items():
        dag = build_dag(job, job_dir=str(path.parent))
        namespace[job.dag_id] = dag
        dags.append(dag)
    if loaded.problems:
        namespace[INVALID_JOBS_DAG_ID] = _invalid_jobs_dag(loaded.problems)
    return dags


class _InvalidJobs(DAG):
    """Carries YAML problems into Airflow's import errors without hiding valid DAGs."""

    def validate(self) -> None:
        problems = (self.doc_md or "").split("\n\n")
        raise InvalidJobFilesError(problems)


def _invalid_jobs_dag(problems: Iterable[str]) -> DAG:
    return _InvalidJobs(dag_id=INVALID_JOBS_DAG_ID, schedule=None, doc_md="\n\n".join(problems))
