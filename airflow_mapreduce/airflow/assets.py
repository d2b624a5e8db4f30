"""Data-aware scheduling: the asset a job's commit updates, and the assets a job waits for.

A job's output URI is known only once its run renders it (``s3://reports/{{ ds }}/``, or
a run's conf), so the commit declares an AssetAlias as its outlet and, once committed,
adds an event for the asset of the output it really wrote. A downstream DAG schedules on
that asset (one fixed output) or on the alias (every output of the job).
"""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import Asset, AssetAlias, AssetAll, AssetAny
from airflow.sdk.definitions.asset import BaseAsset

from airflow_mapreduce.job.validators import AssetCondition, ScheduleValue
from airflow_mapreduce.storage import resolve_uri

ALIAS_PREFIX = "mapreduce:"


def output_alias(dag_id: str, task_id: str) -> AssetAlias:
    """The alias a commit task adds its output's asset event to.

    ``mapreduce:<dag_id>`` for a job YAML's DAG (or a MapReduceOperator without a group
    prefix), ``mapreduce:<dag_id>.<group id>`` for a MapReduceOperator in a DAG: the job's
    name, as in its work folder and output lease.
    """
    group = task_id.rpartition(".")[0]
    return AssetAlias(f"{ALIAS_PREFIX}{dag_id}.{group}" if group else f"{ALIAS_PREFIX}{dag_id}")


def output_asset(output_uri: str) -> Asset:
    """The asset of a committed output: its canonical URI, as the job (or the run's conf)
    spells it. Airflow keys an asset by name and URI, and the name is the URI as written:
    a downstream ``Asset("s3://reports/wc/")`` is this asset, ``Asset("s3://reports/wc")``
    another one."""
    return Asset(output_uri)


def dag_schedule(
    schedule: ScheduleValue | None, job_dir: str | None
) -> str | list[BaseAsset] | BaseAsset | None:
    """A job's ``schedule:`` as Airflow's DAG takes it: cron/preset as is, asset URIs as
    Asset objects (a list: all of them), any:/all:/alias: as AssetAny/AssetAll/AssetAlias.

    Plain paths resolve against the job file's folder, as the job's own input and output
    do, so a job that waits for another one's ``output: data/counts/`` names the same asset.
    """
    if schedule is None or isinstance(schedule, str):
        return schedule
    base_dir = Path(job_dir) if job_dir else None
    if isinstance(schedule, list):
        return [_condition(entry, base_dir) for entry in schedule]
    return _condition(schedule, base_dir)


def _condition(entry: AssetCondition, base_dir: Path | None) -> BaseAsset:
    if isinstance(entry, str):
        return Asset(resolve_uri(entry, base_dir))
    [(key, value)] = entry.items()
    if key == "alias":
        return AssetAlias(value)
    objects = [_condition(e, base_dir) for e in value]
    return AssetAny(*objects) if key == "any" else AssetAll(*objects)
