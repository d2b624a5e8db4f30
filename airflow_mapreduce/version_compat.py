"""The one place that touches Airflow internals or depends on Airflow's version.

Everything else uses the public Task SDK (``airflow.sdk``) and the providers' operators.
What is here would change with Airflow: the DAG importer registry (not public until
AIP-85), the DAG processor's file listing, which Airflow 3.3 does not yet route
through that registry, the metadata-DB reads of the UI plugin (which runs in the
API server, where the ORM is the way to a run's task instances and XComs), and the task
SDK's metrics facade (``airflow_stats``: where Airflow's deprecated ``airflow.stats`` points
providers; ``airflow.sdk`` does not export it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version
from typing import Any

from airflow.dag_processing.importers import (
    AbstractDagImporter,
    DagImportError,
    DagImportResult,
    get_importer_registry,
)
from airflow.sdk.observability import stats as airflow_stats
from packaging.version import Version

__all__ = [
    "AIRFLOW_V_3_3_PLUS",
    "AbstractDagImporter",
    "DagImportError",
    "DagImportResult",
    "TaskInstanceRow",
    "airflow_max_map_length",
    "airflow_stats",
    "dag_file_listing",
    "get_importer_registry",
    "requires_dag_access",
    "requires_user",
    "route_dag_file_listing",
    "run_task_instances",
    "run_xcoms",
]

AIRFLOW_VERSION = Version(Version(version("apache-airflow")).base_version)
AIRFLOW_V_3_3_PLUS = Version("3.3.0") <= AIRFLOW_VERSION

ListDagFiles = Callable[[str | os.PathLike[str], bool], list[str]]


def airflow_max_map_length() -> int:
    """[core] max_map_length: the most items a mapped task expands over."""
    from airflow.configuration import conf

    return conf.getint("core", "max_map_length", fallback=1024)


def dag_file_listing() -> ListDagFiles | None:
    """The function the DAG processor lists DAG files with, or None if this Airflow has
    moved it (the YAML importer then still parses YAML that another listing finds)."""
    from airflow.utils import file as dag_files

    return getattr(dag_files, "find_dag_file_paths", None)


def route_dag_file_listing(listing: ListDagFiles) -> bool:
    """Make the DAG processor list DAG files with `listing`; False if it cannot be."""
    from airflow.utils import file as dag_files

    if not hasattr(dag_files, "find_dag_file_paths"):
        return False
    dag_files.find_dag_file_paths = listing  # type: ignore[assignment]  # same signature
    return True


@dataclass(frozen=True)
class TaskInstanceRow:
    task_id: str
    map_index: int
    state: str | None
    try_number: int
    start_date: datetime | None
    end_date: datetime | None
    label: str | None  # the rendered map_index_template


def run_task_instances(dag_id: str, run_id: str, task_ids: list[str]) -> list[TaskInstanceRow]:
    """The run's task instances of `task_ids` (API server side: the metadata DB)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = select(TaskInstance).where(
        TaskInstance.dag_id == dag_id,
        TaskInstance.run_id == run_id,
        TaskInstance.task_id.in_(task_ids),
    )
    with create_session() as session:
        return [
            TaskInstanceRow(
                task_id=ti.task_id,
                map_index=ti.map_index,
                state=str(ti.state) if ti.state is not None else None,
                try_number=ti.try_number,
                start_date=ti.start_date,
                end_date=ti.end_date,
                label=ti.rendered_map_index,
            )
            for ti in session.scalars(query)
        ]


def run_xcoms(dag_id: str, run_id: str, key: str) -> dict[str, Any]:
    """task_id -> the deserialized XCom `key` of that task (unmapped tasks) in the run."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = select(XComModel.task_id, XComModel.value).where(
        XComModel.dag_id == dag_id,
        XComModel.run_id == run_id,
        XComModel.key == key,
        XComModel.map_index == -1,
    )
    with create_session() as session:
        return {
            task_id: XComModel.deserialize_value(_Row(value))
            for task_id, value in session.execute(query)
        }


@dataclass(frozen=True)
class _Row:  # what XComModel.deserialize_value reads: an object with .value
    value: Any


def requires_user() -> Callable[..., Any]:
    """A FastAPI dependency: the caller is logged in to Airflow (cookie or bearer token)."""
    from airflow.api_fastapi.core_api.security import get_user

    return get_user


def requires_dag_access(entity: str) -> Callable[..., None]:
    """A FastAPI dependency: the caller may read `entity` (RUN, XCOM...) of the path's DAG."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return requires_access_dag("GET", DagAccessEntity[entity])
