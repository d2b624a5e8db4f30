"""MapReduce jobs on Kubernetes as Apache Airflow 3 DAGs.

``from airflow_mapreduce import MapReduceOperator`` is the public face. The package root
stays import-light (the operator is loaded on first use): worker pods import
``airflow_mapreduce.worker`` without Airflow installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_mapreduce.operators.mapreduce import MapReduceOperator

__version__ = "0.1.0"
__all__ = ["MapReduceOperator", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "MapReduceOperator":
        from airflow_mapreduce.operators.mapreduce import MapReduceOperator

        return MapReduceOperator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
