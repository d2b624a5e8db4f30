"""Provider metadata, registered through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_mapreduce import __version__

# The work-queue connections (hooks/work_queue.py), declared here as Airflow 3.2+ wants:
# the Connections form and `airflow providers hooks` read them without importing hooks.
_STRING = {"type": ["string", "null"]}
REDIS_QUEUE_CONNECTION: dict[str, Any] = {
    "hook-class-name": "airflow_mapreduce.hooks.work_queue.RedisQueueHook",
    "hook-name": "MapReduce work queue (Redis)",
    "connection-type": "mapreduce_redis",
    "conn-fields": {
        "db": {
            "label": "Database number",
            "schema": {"type": ["integer", "null"], "minimum": 0, "default": 0},
        },
        "ssl": {
            "label": "TLS (rediss://)",
            "schema": {"type": ["boolean", "null"], "default": False},
        },
        "ssl_cert_reqs": {
            "label": "TLS certificate check",
            "description": "required, optional or none",
            "schema": {**_STRING, "enum": ["required", "optional", "none"]},
        },
        "ssl_ca_certs": {"label": "TLS CA certificates file", "schema": _STRING},
        "ssl_certfile": {"label": "TLS client certificate file", "schema": _STRING},
        "ssl_keyfile": {"label": "TLS client key file", "schema": _STRING},
    },
    "ui-field-behaviour": {
        "hidden-fields": ["schema"],
        "relabeling": {"login": "Username (Redis ACL; optional)"},
        "placeholders": {"host": "redis.example.internal", "port": "6379"},
    },
}
NATS_QUEUE_CONNECTION: dict[str, Any] = {
    "hook-class-name": "airflow_mapreduce.hooks.work_queue.NatsQueueHook",
    "hook-name": "MapReduce work queue (NATS JetStream)",
    "connection-type": "mapreduce_nats",
    "conn-fields": {
        "tls": {
            "label": "TLS (tls://)",
            "schema": {"type": ["boolean", "null"], "default": False},
        },
    },
    "ui-field-behaviour": {
        "hidden-fields": ["schema"],
        "relabeling": {"login": "User (optional)", "password": "Password, or token without a user"},
        "placeholders": {"host": "nats.example.internal", "port": "4222"},
    },
}


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
                "python-modules": [
                    "airflow_mapreduce.operators.mapreduce",
                    "airflow_mapreduce.airflow.operators",
                ],
            }
        ],
        "hooks": [
            {
                "integration-name": "MapReduce",
                "python-modules": ["airflow_mapreduce.hooks.work_queue"],
            }
        ],
        "triggers": [
            {
                "integration-name": "MapReduce",
                "python-modules": ["airflow_mapreduce.triggers.work_queue"],
            }
        ],
        "connection-types": [REDIS_QUEUE_CONNECTION, NATS_QUEUE_CONNECTION],
        "extra-links": ["airflow_mapreduce.airflow.links.OutputManifestLink"],
    }
