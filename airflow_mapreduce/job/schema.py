"""The JSON Schema of job files, generated from the pydantic models (never hand-written)."""

from __future__ import annotations

import json
from typing import Any

from airflow_mapreduce.job.models import JobFile

SCHEMA_FILE = "schema/job.schema.json"
"""The committed copy for editors, relative to the repository root."""


def job_json_schema() -> dict[str, Any]:
    schema = JobFile.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "airflow-mapreduce job",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def job_json_schema_text() -> str:
    return json.dumps(job_json_schema(), indent=2, sort_keys=True) + "\n"
