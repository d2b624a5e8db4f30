"""Multi-step and multi-input jobs through `airflow-mapreduce run` as a user runs it (a
subprocess, local workers): the example DAGs' job files and the test's own jobs, each
against a reference computed with plain Python."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.example_references import (
    events_by_country,
    output_lines,
    top_words,
    write_users_and_events,
)
from tests.pipelines import job_yaml, output_records, reference, write_job_folder
from tests.wordcount import read_parts

CLI = Path(sys.executable).parent / "airflow-mapreduce"
REPO = Path(__file__).resolve().parents[1]


def run_cli(folder: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), "run", *args, "--workers", "2", "--progress", "none"],
        check=False,
        cwd=folder,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_top_words_example_matches_python(tmp_path: Path) -> None:
    output = tmp_path / "top"
    result = run_cli(tmp_path, [str(REPO / "dags/top_words.yaml"), "--output", str(output)])
    assert result.returncode == 0, result.stderr
    assert (output / "part-00000").read_text().splitlines() == top_words(
        REPO / "dags/data/wordcount"
    )
    assert "Step 2 of 2, from the output of step 1 to the output" in result.stdout


def test_the_join_example_matches_python(tmp_path: Path) -> None:
    output = tmp_path / "joined"
    result = run_cli(tmp_path, [str(REPO / "dags/events_by_country.yaml"), "--output", str(output)])
    assert result.returncode == 0, result.stderr
    data = REPO / "dags/data"
    assert output_lines(output) == events_by_country(data / "users", data / "events")


def test_the_join_example_over_other_data(tmp_path: Path) -> None:
    # The job file copied beside data of the test's own (its relative paths follow).
    users, events = write_users_and_events(tmp_path / "data")
    text = (REPO / "dags/events_by_country.yaml").read_text()
    (tmp_path / "job.yaml").write_text(text)
    (tmp_path / "mapreduce_jobs").symlink_to(REPO / "dags/mapreduce_jobs")
    result = run_cli(tmp_path, [str(tmp_path / "job.yaml"), "--output", str(tmp_path / "o")])
    assert result.returncode == 0, result.stderr
    assert output_lines(tmp_path / "o") == events_by_country(users, events)
    assert "counter join.events_without_user = " in result.stdout


@pytest.mark.parametrize("kind", ["pipeline", "mixed", "join"])
def test_the_tests_own_jobs_match_python(tmp_path: Path, kind: str) -> None:
    jobs = write_job_folder(tmp_path / "job")
    output = tmp_path / "out"
    (jobs.folder / "job.yaml").write_text(job_yaml(f"cli_{kind}", kind, jobs, str(output)))
    result = run_cli(jobs.folder, [str(jobs.folder / "job.yaml")])
    assert result.returncode == 0, result.stderr
    assert output_records(read_parts(output)) == reference(jobs, kind)
    assert not (output / "_temporary").exists()


def test_input_is_refused_for_a_job_of_several_inputs(tmp_path: Path) -> None:
    result = run_cli(
        tmp_path,
        [str(REPO / "dags/events_by_country.yaml"), "--input", str(tmp_path), "--output",
         str(tmp_path / "o")],
    )  # fmt: skip
    assert result.returncode != 0
    assert "reads 2 inputs (inputs:)" in result.stderr
    assert not (tmp_path / "o").exists()
