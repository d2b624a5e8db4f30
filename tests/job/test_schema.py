"""The committed JSON Schema is the models' own, and it agrees with the models."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from airflow_mapreduce.job.schema import SCHEMA_FILE, job_json_schema, job_json_schema_text
from airflow_mapreduce.job.validators import URI_PATTERN, check_uri

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted([*(REPO / "dags").glob("*.yaml"), *(REPO / "examples").glob("*.yaml")])
INVALID = REPO / "tests" / "job" / "invalid"


def test_committed_schema_is_current() -> None:
    committed = (REPO / SCHEMA_FILE).read_text()
    assert committed == job_json_schema_text(), (
        "schema/job.schema.json is stale: run `airflow-mapreduce schema > schema/job.schema.json`"
    )


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_jobs_satisfy_the_schema(path: Path) -> None:
    # Dates as an editor sees them: text.
    data = json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))
    jsonschema.validate(data, job_json_schema())


@pytest.mark.parametrize(
    "name",
    [
        "typo_top_level_key",
        "backend_typo",
        "negative_reducers",
        "uri_http_scheme",
        "reducers_yes",
        "retries_quoted",
        "priority_weight_int64",
        "dagrun_timeout_negative",
        "output_root",
        "work_s3_no_bucket",
        "uri_credentials",
    ],
)
def test_editors_flag_what_the_loader_rejects(name: str) -> None:
    data = yaml.safe_load((INVALID / f"{name}.yaml").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, job_json_schema())


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket/logs/{{ ds }}/",
        "file:///data/in",
        "memory://x",
        "data/in",
        "/tmp/out/{{ run_id }}",
        "http://example.com/x",
        "ftp://h/x",
        "../up",
        "s3://b/a/../c",
        "c:x",
        "out/{{ ds }",
        "has space/x",
        # roots, and URIs that name no place
        "/",
        "//",
        "file://",
        "file:///",
        "file://host/x",
        "s3://",
        "s3:///x",
        "s3://bucket",
        "memory://",
        "memory:///x",
        # credentials
        "s3://KEY:SECRET@bucket/x",
        "s3://user@bucket/x",
        "s3://KEY:SEC/RET@bucket/x",
        "s3://{{ conn.aws.login }}@bucket/x",
        "s3://{{ var.value.bucket }}/x",
        "s3://bucket/key@x",
        "data/a@b",
        # braces outside templates, and length
        "out/{%if x%}",
        "out/{a}",
        "x" * 4096,
        "x" * 4097,
    ],
    ids=lambda uri: uri if len(uri) < 50 else f"{uri[:8]}...({len(uri)} characters)",
)
def test_params_pattern_and_check_uri_agree(uri: str) -> None:
    import re

    try:
        check_uri(uri)
        accepted = True
    except ValueError:
        accepted = False
    assert (re.search(URI_PATTERN, uri) is not None) is accepted


def test_schema_is_json_serialisable_and_strict() -> None:
    schema = json.loads(job_json_schema_text())
    assert schema["additionalProperties"] is False
    assert "kubernetes" in schema["properties"]
