"""airflow-mapreduce validate | schema | render, run as a user would (real CLI app)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml
from typer.testing import CliRunner

from airflow_mapreduce.cli import app
from airflow_mapreduce.spec.schema import job_json_schema

REPO = Path(__file__).resolve().parents[1]
INVALID = REPO / "tests" / "spec" / "invalid"
runner = CliRunner()


def test_validate_accepts_the_examples() -> None:
    result = runner.invoke(app, ["validate", str(REPO / "dags")])
    assert result.exit_code == 0, result.output
    assert "0 invalid" in result.stdout


def test_validate_lists_every_problem_of_every_file_and_fails() -> None:
    result = runner.invoke(app, ["validate", str(INVALID), str(REPO / "dags" / "wordcount.yaml")])
    assert result.exit_code == 1
    files = sorted(INVALID.glob("*.yaml"))
    assert f"{len(files) + 1} file(s) checked, {len(files)} invalid" in result.stdout
    for path in files:
        assert f"{path}: invalid MapReduce job" in result.stderr
    assert "ok  " in result.stdout and "wordcount.yaml" in result.stdout


def test_validate_reports_a_missing_path() -> None:
    result = runner.invoke(app, ["validate", "/nonexistent/job.yaml"])
    assert result.exit_code == 1
    assert "/nonexistent/job.yaml: no such file or folder" in result.stderr


def test_schema_prints_the_committed_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == json.loads((REPO / "schema/job.schema.json").read_text())


def test_render_prints_effective_spec_graph_and_valid_pods(tmp_path: Path) -> None:
    (tmp_path / "defaults.yaml").write_text("kubernetes: {namespace: batch-jobs}\nretries: 5\n")
    job = (REPO / "dags" / "wordcount_kubernetes.yaml").read_text()
    (tmp_path / "job.yaml").write_text(job.replace("  namespace: mapreduce\n", ""))
    result = runner.invoke(app, ["render", str(tmp_path / "job.yaml")])
    assert result.exit_code == 0, result.output
    rendered = yaml.safe_load(result.stdout)
    spec = rendered["spec"]
    jsonschema.validate(spec, job_json_schema())  # the effective spec is a valid job file
    assert spec["retries"] == 5 and spec["kubernetes"]["namespace"] == "batch-jobs"
    order = [t["task_id"] for t in rendered["tasks"]]
    assert order == ["plan", "map", "shuffle", "reduce", "commit"]
    assert [t["task_id"] for t in rendered["tasks"] if t["mapped"]] == ["map", "reduce"]
    assert rendered["params"]["reducers"] == 4
    for pod in rendered["pods"].values():
        assert pod["metadata"]["namespace"] == "batch-jobs"
        kubernetes_validate.validate(pod, "1.37.0", strict=True)


def test_render_of_an_invalid_job_fails_with_its_problems() -> None:
    result = runner.invoke(app, ["render", str(INVALID / "backend_typo.yaml")])
    assert result.exit_code == 1
    assert "did you mean 'kubernetes'?" in result.stderr
