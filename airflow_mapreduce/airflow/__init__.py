"""The Airflow side: the YAML DAG factory and importer, the step operators, backends.

Imported lazily: Airflow imports this package's YAML DAG importer in every process at
start-up (the ``airflow.policy`` entry point), which must not pay for, or be broken by,
the operators and the factory.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_mapreduce.airflow.factory import build_dag, load_yaml_dags

_HOMES = {"build_dag": "factory", "load_yaml_dags": "factory"}
__all__ = ["build_dag", "load_yaml_dags"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
