"""The YAML DAG factory: a job YAML becomes a DAG.

Airflow reads job YAMLs through the package's DAG importer (`dag_importer`), one DAG file
per YAML, so a broken file is an import error of its own and hides no other DAG.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Param

from airflow_mapreduce.airflow.assets import dag_schedule
from airflow_mapreduce.errors import MapReduceError
from airflow_mapreduce.job.models import JobFile, JobSpec, as_utc_datetime
from airflow_mapreduce.job.validators import URI_PATTERN
from airflow_mapreduce.operators.mapreduce import MapReduceOperator


def build_dag(job: JobFile, *, job_dir: str | None = None) -> DAG:
    """A DAG for one job; params input/output/reducers/parallelism can be set per run.

    The params' JSON Schema applies the YAML's rules to a run's conf, so the Trigger DAG
    form and ``POST /api/v2/dags/{dag_id}/dagRuns`` reject a bad override up front.
    """
    with DAG(
        dag_id=job.dag_id,
        description=job.description,
        schedule=dag_schedule(job.schedule, job_dir),  # cron, preset or assets
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
        # The job's tasks without a group prefix: task ids read plan, map, ... in the grid.
        spec = job.job()
        inputs: dict[str, Any] = (
            {"input": "{{ params.input }}"}
            if spec.inputs is None
            else {
                "inputs": [
                    entry.model_copy(update={"uri": f"{{{{ params.{spec.input_name(i)} }}}}"})
                    for i, entry in enumerate(spec.inputs)
                ]
            }
        )
        MapReduceOperator(
            task_id=job.dag_id,
            job=spec,
            job_dir=job_dir,
            prefix_group_id=False,
            **inputs,
            output="{{ params.output }}",
            reducers="{{ params.reducers }}",
            parallelism="{{ params.parallelism }}",
        )
    return dag


def run_params(job: JobSpec) -> dict[str, Param]:
    """The Trigger DAG form: what a run may override, with the YAML's values as defaults.

    The bounds are the YAML's, as plan.planner.check_reducers applies them to a run.
    """
    from airflow_mapreduce.job.models import MAX_REDUCERS, MAX_TASKS

    uri_rule: dict[str, Any] = {"type": "string", "minLength": 1, "pattern": URI_PATTERN}
    # A run may change how many reducers, not whether there is a reduce phase.
    reduce_rule = (
        "0: this job is map-only (it has no reducer)"
        if job.map_only
        else f"1 to {MAX_REDUCERS}: this job has a reducer, so a run cannot skip it"
    )
    inputs = job.all_inputs
    return {
        **{
            job.input_name(index): Param(
                entry.uri,
                **uri_rule,
                title="Input" if job.inputs is None else f"Input {entry.name or index + 1}",
                description="File, folder, glob or s3:// prefix to read; may hold {{ ds }}.",
            )
            for index, entry in enumerate(inputs)
        },
        "output": Param(
            job.output,
            **uri_rule,
            title="Output",
            description="Folder or s3:// prefix to write; may hold {{ ds }}.",
        ),
        "reducers": Param(
            job.output_reducers,
            type="integer",
            minimum=0 if job.map_only else 1,
            maximum=0 if job.map_only else MAX_REDUCERS,
            title="Reducers",
            description="Number of reduce partitions (output part files; of the last step "
            "in a multi-step job). A run may change "
            f"how many, not whether there is a reduce phase: {reduce_rule}.",
        ),
        "parallelism": Param(
            job.max_map_tasks,
            type="integer",
            minimum=1,
            maximum=MAX_TASKS,
            title="Parallelism",
            description="At most this many map tasks; the input's splits are grouped into them.",
        ),
    }


def _default_args(job: JobFile) -> dict[str, Any]:
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
    """The loader file of earlier releases (``load_yaml_dags(__file__, globals())``).

    Registers nothing: the YAML DAG importer parses each job file as a DAG file of its own,
    and a dag_id that two files define would flap between them. All DAGs of one loader file
    go stale together when it has an import error, so it never loads the YAMLs itself; in a
    process without the importer it fails, saying so.
    """
    from airflow_mapreduce.airflow.dag_importer import installed

    if not installed():
        raise MapReduceError(
            f"{folder}: MapReduce job YAMLs need airflow-mapreduce's YAML DAG importer, "
            "which this Airflow process has not installed, so no job DAG is loaded. It is "
            "installed by "
            "the package's 'airflow.policy' entry point (reinstall airflow-mapreduce if "
            "`importlib.metadata.entry_points(group='airflow.policy')` does not list it), or "
            "call airflow_mapreduce.airflow.dag_importer.install() from "
            "airflow_local_settings.py"
        )
    return []
