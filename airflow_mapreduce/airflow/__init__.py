"""Airflow entry points: the task-group builder and the YAML DAG factory.

Imported lazily: Airflow imports this package's YAML DAG importer in every process at
start-up (the ``airflow.policy`` entry point), which must not pay for, or be broken by,
the operators and the factory.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_mapreduce.airflow.factory import build_dag, load_yaml_dags
    from airflow_mapreduce.airflow.task_group import add_mapreduce_tasks, mapreduce_task_group

_HOMES = {
    "build_dag": "factory",
    "load_yaml_dags": "factory",
    "add_mapreduce_tasks": "task_group",
    "mapreduce_task_group": "task_group",
}
__all__ = ["add_mapreduce_tasks", "build_dag", "load_yaml_dags", "mapreduce_task_group"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
