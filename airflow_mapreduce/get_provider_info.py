"""Provider metadata, registered through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_mapreduce import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-mapreduce",
        "name": "MapReduce",
        "description": "MapReduce jobs (Hadoop Streaming or Python callables) as Airflow DAGs "
        "that run as mapped pods on Kubernetes, with an S3 shuffle.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "MapReduce",
                "external-doc-url": "https://hadoop.apache.org/docs/stable/hadoop-streaming/HadoopStreaming.html",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "MapReduce",
                "python-modules": ["airflow_mapreduce.airflow.operators"],
            }
        ],
    }
