"""defaults.yaml: deep-merged under every job of its folder; the job wins."""

from __future__ import annotations

from pathlib import Path

from airflow_mapreduce.job import load_job_file
from airflow_mapreduce.job.folder import job_files
from airflow_mapreduce.job.loader import deep_merge

DEFAULTS = """\
backend: kubernetes
retries: 4
schedule: "0 3 * * *"
start_date: 2024-01-01
kubernetes:
  image: registry.example/jobs:7
  namespace: mapreduce
  labels: {team: data}
"""

JOB = """\
dag_id: nightly
input: {uri: "s3://logs/{{ ds }}/"}
mapper: {command: [cat]}
reducers: 0
output: "s3://reports/{{ ds }}/"
retries: 1
kubernetes:
  labels: {app: nightly}
"""


def test_job_inherits_folder_defaults_and_overrides_them(tmp_path: Path) -> None:
    (tmp_path / "defaults.yaml").write_text(DEFAULTS)
    (tmp_path / "nightly.yaml").write_text(JOB)
    job = load_job_file(tmp_path / "nightly.yaml")
    assert job.backend == "kubernetes" and job.schedule == "0 3 * * *"
    assert job.retries == 1  # the job wins
    assert job.kubernetes.image == "registry.example/jobs:7"
    assert job.kubernetes.namespace == "mapreduce"
    assert job.kubernetes.labels == {"team": "data", "app": "nightly"}  # merged, not replaced


def test_defaults_file_is_not_a_job(tmp_path: Path) -> None:
    (tmp_path / "defaults.yaml").write_text(DEFAULTS)
    (tmp_path / "nightly.yaml").write_text(JOB)
    assert [p.name for p in job_files(tmp_path)] == ["nightly.yaml"]


def test_defaults_apply_only_to_their_own_folder(tmp_path: Path) -> None:
    (tmp_path / "defaults.yaml").write_text(DEFAULTS)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "job.yaml").write_text(JOB)
    assert load_job_file(tmp_path / "other" / "job.yaml").backend == "local"


def test_deep_merge_replaces_lists_and_scalars() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert deep_merge(base, {"a": {"c": [3]}, "d": {"x": 1}}) == {
        "a": {"b": 1, "c": [3]},
        "d": {"x": 1},
    }
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}  # inputs untouched
