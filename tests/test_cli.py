"""airflow-mapreduce validate | schema | render, run as a user would (real CLI app)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml
from typer.testing import CliRunner

from airflow_mapreduce.cli import app
from airflow_mapreduce.job.schema import job_json_schema
from tests.wordcount import output_counts

REPO = Path(__file__).resolve().parents[1]
INVALID = REPO / "tests" / "job" / "invalid"
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
    job = (REPO / "examples" / "wordcount_kubernetes.yaml").read_text()
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


def test_render_shows_each_phase_in_its_own_image(tmp_path: Path) -> None:
    job = (REPO / "examples" / "wordcount_kubernetes.yaml").read_text()
    images = "  map_image: registry.example/map:2\n  reduce_image: registry.example/reduce:3\n"
    (tmp_path / "job.yaml").write_text(job.replace("kubernetes:\n", "kubernetes:\n" + images, 1))
    result = runner.invoke(app, ["render", str(tmp_path / "job.yaml")])
    assert result.exit_code == 0, result.output
    rendered = yaml.safe_load(result.stdout)
    assert rendered["spec"]["kubernetes"]["map_image"] == "registry.example/map:2"
    pods = rendered["pods"]
    assert pods["map"]["spec"]["containers"][0]["image"] == "registry.example/map:2"
    assert pods["reduce"]["spec"]["containers"][0]["image"] == "registry.example/reduce:3"
    for pod in pods.values():
        kubernetes_validate.validate(pod, "1.37.0", strict=True)


def test_render_of_an_invalid_job_fails_with_its_problems() -> None:
    result = runner.invoke(app, ["render", str(INVALID / "backend_typo.yaml")])
    assert result.exit_code == 1
    assert "did you mean 'kubernetes'?" in result.stderr


def test_run_without_airflow_counts_like_counter(word_corpus, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        ["run", str(REPO / "dags" / "wordcount.yaml"), "--input", str(word_corpus.folder),
         "--output", str(out), "--workers", "2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert output_counts(out) == word_corpus.counts
    summaries = [line for line in result.stdout.splitlines() if "airflow-mapreduce worker:" in line]
    assert len(summaries) >= 4 + 3  # map tasks (512 KiB splits of 2.5 MB) and 3 reducers
    assert all("peak memory" in line for line in summaries)
    assert f"to file://{out}" in result.stdout
    assert "peak memory of reduce tasks: up to" in result.stdout


def test_run_stops_at_a_failing_task_and_quotes_it(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    for name in "abc":  # map tasks for one worker: all but the first queued behind it
        (tmp_path / "in" / f"{name}.txt").write_text("a\n" * 1000)
    job = tmp_path / "broken.yaml"
    job.write_text(
        "dag_id: broken\ninput: {uri: in, split_size: 1KiB}\noutput: out\nreducers: 1\n"
        "mapper: {command: [python3, -c, \"import sys; sys.exit('no such table: words')\"]}\n"
        "reducer: {command: [cat]}\n"
    )
    result = runner.invoke(
        app, ["run", str(job), "--work", str(tmp_path / "scratch"), "--workers", "1"]
    )
    assert "into 6 map task(s)" in result.stdout  # 2 KB files, 1 KiB splits
    assert result.exit_code == 1, result.output
    assert "FAILED: worker exited with code 1" in result.stderr
    assert "no such table: words" in result.stderr
    assert "worker:" not in result.stdout, "no task started after the failure"
    assert not (tmp_path / "out" / "_SUCCESS").exists()
    # The failed run's work area stays for a look, where --work put it.
    assert [p.name for p in (tmp_path / "scratch").rglob("plan.json")] == ["plan.json"]
    assert not (tmp_path / "out" / "_temporary").exists()


def test_run_asks_for_a_uri_where_the_job_has_a_template(tmp_path: Path) -> None:
    job = tmp_path / "daily.yaml"
    job.write_text(
        "dag_id: daily\ninput: {uri: 's3://logs/{{ ds }}/'}\noutput: out\n"
        "mapper: {command: [cat]}\nreducer: {command: [cat]}\n"
    )
    result = runner.invoke(app, ["run", str(job), "--output", str(tmp_path / "out")])
    assert result.exit_code == 2
    message = " ".join(result.stderr.replace("│", " ").split())  # rich's box, unwrapped
    assert "Invalid value for --input" in message and "is an Airflow template" in message


def test_render_of_a_multi_step_job_shows_each_step_as_it_runs() -> None:
    result = runner.invoke(app, ["render", str(REPO / "dags" / "top_words.yaml")])
    assert result.exit_code == 0, result.output
    rendered = yaml.safe_load(result.stdout)
    spec = rendered["spec"]
    jsonschema.validate(spec, job_json_schema())  # still a valid job file
    assert not {"mapper", "reducer", "reducers"} & set(spec)
    first, second = spec["steps"]
    assert (first["reducers"], second["reducers"]) == (3, 1)
    assert second["memory"] == first["memory"]  # the job's settings, in every step
    order = [t["task_id"] for t in rendered["tasks"]]
    assert order == [
        "step_1.plan", "step_1.map", "step_1.shuffle", "step_1.reduce",
        "step_2.plan", "step_2.map", "step_2.shuffle", "step_2.reduce", "step_2.commit",
    ]  # fmt: skip
    assert rendered["params"]["reducers"] == 1  # the last step's
