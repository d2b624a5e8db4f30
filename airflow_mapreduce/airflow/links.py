"""The commit task's extra link: the committed output's _manifest.json."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

S3_CONSOLE_OBJECT = "https://s3.console.aws.amazon.com/s3/object/{bucket}?prefix={key}"


class OutputManifestLink(BaseOperatorLink):
    """Opens the manifest the commit returned (its XCom): in the S3 console for s3://,
    as the URI itself otherwise (file:// opens where the browser shares the disk).

    Airflow 3 computes the link in the worker once the task has run and keeps it in XCom,
    so the API server shows it without reading the job's storage.
    """

    name = "Output manifest"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        manifest_uri = XCom.get_value(ti_key=ti_key, key="return_value")
        return manifest_link(manifest_uri) if isinstance(manifest_uri, str) else ""


def manifest_link(manifest_uri: str) -> str:
    """Where a browser opens `manifest_uri`."""
    if manifest_uri.startswith("s3://"):
        bucket, _, key = manifest_uri[len("s3://") :].partition("/")
        return S3_CONSOLE_OBJECT.format(bucket=quote(bucket, safe=""), key=quote(key, safe="/"))
    return manifest_uri
