"""Storage access from Airflow connections: filesystems for the Airflow-side steps and
the environment handed to local worker subprocesses. Credentials never enter task specs,
XCom or logs."""

from __future__ import annotations

import os
from collections.abc import Iterable

from fsspec import AbstractFileSystem

from airflow_mapreduce.launch import job_dir_env
from airflow_mapreduce.storage import FileSystems, protocol_of

S3_PROTOCOLS = ("s3", "s3a")


def airflow_filesystems(aws_conn_id: str) -> FileSystems:
    """FileSystems whose s3:// access uses the Airflow connection (endpoint, keys, region).

    The S3 filesystem is built on first s3:// use, and shared by s3:// and s3a://.
    """
    built: list[AbstractFileSystem] = []

    def s3() -> AbstractFileSystem:
        if not built:
            from airflow.providers.amazon.aws.fs.s3 import get_fs

            built.append(get_fs(aws_conn_id))
        return built[0]

    return FileSystems(factories={p: s3 for p in S3_PROTOCOLS})


def worker_env(aws_conn_id: str, uris: Iterable[str], job_dir: str | None) -> dict[str, str]:
    """The environment of a local worker subprocess touching `uris`: this process's, the
    job folder on PYTHONPATH, and the connection's credentials only if some URI is on S3."""
    env = job_dir_env(dict(os.environ), job_dir)
    if any(protocol_of(uri) in S3_PROTOCOLS for uri in uris):
        env.update(worker_storage_env(aws_conn_id))
    return env


def worker_storage_env(aws_conn_id: str) -> dict[str, str]:
    """AWS_* variables that let an Airflow-free worker reach S3 like the connection does."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    hook = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="s3")
    env: dict[str, str] = {}
    credentials = hook.get_credentials()
    if credentials.access_key:
        env["AWS_ACCESS_KEY_ID"] = credentials.access_key
        env["AWS_SECRET_ACCESS_KEY"] = credentials.secret_key
    if credentials.token:
        env["AWS_SESSION_TOKEN"] = credentials.token
    if endpoint := hook.conn_config.get_service_endpoint_url(service_name="s3"):
        env["AWS_ENDPOINT_URL_S3"] = endpoint
    if region := hook.conn_config.region_name:
        env["AWS_DEFAULT_REGION"] = region
    env.update(retry_env(hook.conn_config.extra_config.get("config_kwargs", {}).get("retries")))
    return env


def retry_env(retries: object) -> dict[str, str]:
    """botocore's retry settings of the connection (extras ``config_kwargs.retries``, which
    Airflow's S3 filesystem uses) as the environment variables every botocore reads."""
    if not isinstance(retries, dict):
        return {}
    env = {}
    if mode := retries.get("mode"):
        env["AWS_RETRY_MODE"] = str(mode)
    attempts = retries.get("total_max_attempts") or retries.get("max_attempts")
    if attempts is not None:
        # max_attempts counts retries only; the variable counts every attempt.
        total = int(attempts) + (0 if "total_max_attempts" in retries else 1)
        env["AWS_MAX_ATTEMPTS"] = str(total)
    return env
