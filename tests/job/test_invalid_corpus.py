"""The corpus of invalid job files: each one's problems, word for word, with location.

Every file in invalid/ starts with ``# expect: LINE:COL: field.path: message`` lines; every
folder in invalid_folders/ (defaults.yaml, dag_ids used twice) has an EXPECTED file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from airflow_mapreduce.errors import JobSpecError
from airflow_mapreduce.job import load_job_file
from airflow_mapreduce.job.folder import job_files, load_jobs

HERE = Path(__file__).resolve().parent
INVALID = sorted((HERE / "invalid").glob("*.yaml"))
FOLDERS = sorted(p for p in (HERE / "invalid_folders").iterdir() if p.is_dir())


def expectations(path: Path) -> list[str]:
    prefix = "# expect: "
    return [
        line[len(prefix) :] for line in path.read_text().splitlines() if line.startswith(prefix)
    ]


def test_the_corpus_is_large_and_every_file_says_what_it_expects() -> None:
    assert len(INVALID) + len(FOLDERS) >= 40
    assert all(expectations(path) for path in INVALID)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_job_reports_the_expected_problem(path: Path) -> None:
    with pytest.raises(JobSpecError) as info:
        load_job_file(path)
    problems = info.value.problems
    for expected in expectations(path):
        wanted = f"{path}:{expected}"
        assert any(p.startswith(wanted) for p in problems), (wanted, problems)
    # Every problem names the file, line and column.
    assert all(re.match(rf"^{re.escape(str(path))}:\d+:\d+: ", p) for p in problems), problems


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_invalid_folder_reports_problems_in_the_right_file(folder: Path) -> None:
    loaded = load_jobs(job_files(folder))
    report = "\n".join(loaded.problems)
    for line in (folder / "EXPECTED").read_text().splitlines():
        assert line.replace("{dir}", str(folder)) in report, report


def test_duplicate_dag_ids_keep_the_first_job() -> None:
    loaded = load_jobs(job_files(HERE / "invalid_folders" / "duplicate_dag_ids"))
    assert [p.name for p in loaded.jobs] == ["first.yaml"]


def test_one_broken_file_hides_no_other(tmp_path: Path) -> None:
    for path in INVALID[:5]:
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "good.yaml").write_text(
        "dag_id: good\ninput: {uri: in}\nmapper: {command: [cat]}\nreducers: 0\noutput: out\n"
    )
    loaded = load_jobs(job_files(tmp_path))
    assert [job.dag_id for job in loaded.jobs.values()] == ["good"]
    assert len(loaded.problems) == 5
