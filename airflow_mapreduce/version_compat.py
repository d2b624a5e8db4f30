"""The one place that touches Airflow internals or depends on Airflow's version.

Everything else uses the public Task SDK (``airflow.sdk``) and the providers' operators.
What is here would change with Airflow: the DAG importer registry (not public until
AIP-85) and the DAG processor's file listing, which Airflow 3.3 does not yet route
through that registry.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib.metadata import version

from airflow.dag_processing.importers import (
    AbstractDagImporter,
    DagImportError,
    DagImportResult,
    get_importer_registry,
)
from packaging.version import Version

__all__ = [
    "AIRFLOW_V_3_3_PLUS",
    "AbstractDagImporter",
    "DagImportError",
    "DagImportResult",
    "airflow_max_map_length",
    "dag_file_listing",
    "get_importer_registry",
    "route_dag_file_listing",
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
