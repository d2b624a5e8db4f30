"""Shipped files end to end without Airflow: the plan stages them into the run's work area,
every task (map and reduce) finds them in its working folder, which is gone afterwards.

Through `airflow-mapreduce run` (a subprocess, as a user runs it) on local files and with
input, output, work and a shipped file on a real S3 server (SeaweedFS); the task working
folder and the plan's checks in this process.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from airflow_mapreduce.errors import PlanError, PlanRefusedError, TaskFailedError
from airflow_mapreduce.job import load_job_file
from airflow_mapreduce.plan import shipped_files as plan_shipped
from airflow_mapreduce.plan.layout import RunLayout
from airflow_mapreduce.plan.manifests import read_task_spec
from airflow_mapreduce.plan.planner import RunTarget, plan_run
from airflow_mapreduce.plan.tasks import StagedFile
from airflow_mapreduce.storage import FileSystems
from airflow_mapreduce.worker.run import run_task
from airflow_mapreduce.worker.shipped_files import task_working_folder
from tests.shipped_jobs import KINDS, STOP_FILE, job_yaml, reference, write_shipped_jobs
from tests.wordcount import output_counts, word_counts

CLI = Path(sys.executable).parent / "airflow-mapreduce"


def run_cli(folder: Path, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), "run", *args, "--workers", "2", "--progress", "none"],
        check=False,
        cwd=folder,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def task_folders(tmp: Path) -> list[str]:
    return [name for name in os.listdir(tmp) if name.startswith("amr-task-")]


@pytest.mark.parametrize("kind", list(KINDS))
def test_cli_run_on_local_files(tmp_path: Path, kind: str) -> None:
    jobs = write_shipped_jobs(tmp_path / "job")
    (jobs.folder / "job.yaml").write_text(job_yaml("shipped_cli", kind))
    tmp = tmp_path / "tmp"  # the workers' TMPDIR: their working folders go there
    tmp.mkdir()

    result = run_cli(tmp_path, [str(jobs.folder / "job.yaml")], TMPDIR=str(tmp))

    assert result.returncode == 0, result.stderr
    assert output_counts(jobs.folder / "out") == reference(jobs, kind)
    assert "shipped file(s) for every task" in result.stdout + result.stderr
    assert task_folders(tmp) == []  # every task's working folder was removed
    assert not (jobs.folder / "out" / "_temporary").exists()  # staged copies too


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_cli_run_on_s3(tmp_path: Path, s3_server, kind: str) -> None:  # type: ignore[no-untyped-def]
    s3 = s3_server.filesystem()
    bucket = f"shipped-{uuid.uuid4().hex[:10]}"
    s3.mkdir(bucket)
    jobs = write_shipped_jobs(tmp_path / "job")
    s3.put(f"{jobs.input}/", f"{bucket}/in/", recursive=True)
    more: dict[str, Any] = {}
    if kind == "streaming":  # the stop words from the object store, not the laptop
        s3.put(str(jobs.folder / "tables" / "stop.txt"), f"{bucket}/tables/stop.txt")
        more["files"] = [{"source": f"s3://{bucket}/tables/stop.txt", "name": "stopwords.txt"}]
    (jobs.folder / "job.yaml").write_text(
        job_yaml("shipped_s3", kind, f"s3://{bucket}/in/", f"s3://{bucket}/out/", **more)
    )
    env = {
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_ENDPOINT_URL_S3": s3_server.endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
    }

    work = f"s3://{bucket}/work/"
    result = run_cli(tmp_path, [str(jobs.folder / "job.yaml"), "--work", work], **env)

    assert result.returncode == 0, result.stderr
    s3.invalidate_cache()
    parts = {p.rsplit("/", 1)[1]: s3.cat(p) for p in s3.find(f"{bucket}/out") if "/part-" in p}
    assert word_counts(parts) == reference(jobs, kind)
    # The staged files went with the run's work area (SeaweedFS may keep the root's marker).
    assert [p for p in s3.find(f"{bucket}/work") if p != f"{bucket}/work"] == []


def plan(tmp_path: Path, kind: str, **more: Any):  # type: ignore[no-untyped-def]
    jobs = write_shipped_jobs(tmp_path / "job")
    (jobs.folder / "job.yaml").write_text(job_yaml("shipped_plan", kind, **more))
    job = load_job_file(jobs.folder / "job.yaml")
    target = RunTarget(job.dag_id, "run-1", (job.input.uri,), job.output, None, 2, 4)
    return jobs, plan_run(FileSystems(), job, target)


def test_the_plan_stages_the_files_and_the_specs_carry_their_uris(tmp_path: Path) -> None:
    jobs, planned = plan(tmp_path, "executable")
    files = FileSystems()
    layout = RunLayout(planned.plan.work_uri, "shipped_plan", "run-1")
    staged = planned.plan.job.files
    assert [(s.name, s.executable) for s in staged] == [
        ("tokenize", True),
        ("stopwords.txt", False),
    ]
    for item, source in zip(staged, ["scripts/tokenize", "tables/stop.txt"], strict=True):
        assert item.uri == layout.shipped_file_uri(item.name)
        assert item.uri.startswith(f"{layout.run_root}/files/")
        assert files.read_bytes(item.uri) == (jobs.folder / source).read_bytes()
        assert item.size == (jobs.folder / source).stat().st_size
    for uri in planned.map_specs:
        assert read_task_spec(files, uri).job.files == staged


def test_a_missing_source_is_a_plan_error_naming_the_entry(tmp_path: Path) -> None:
    absent = f"memory://shipped-{uuid.uuid4().hex}/absent.tsv"
    with pytest.raises(PlanError) as info:
        plan(tmp_path, "streaming", files=[STOP_FILE, absent])
    assert str(info.value) == (
        f"files[1] (absent.tsv): shipped file {absent} does not exist; create it or fix the "
        "job's files entry (relative paths are taken from the job file's folder)"
    )


def test_a_local_file_removed_after_loading_fails_the_plan(tmp_path: Path) -> None:
    jobs = write_shipped_jobs(tmp_path / "job")
    (jobs.folder / "job.yaml").write_text(job_yaml("shipped_plan", "streaming"))
    job = load_job_file(jobs.folder / "job.yaml")
    (jobs.folder / "tables" / "stop.txt").unlink()
    target = RunTarget(job.dag_id, "run-1", (job.input.uri,), job.output, None, 2, 4)
    with pytest.raises(PlanError, match=r"^files\[0\] \(stopwords.txt\): shipped file file://"):
        plan_run(FileSystems(), job, target)


def test_files_above_the_size_limit_are_refused_before_the_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plan_shipped, "MAX_SHIPPED_BYTES", 20)
    with pytest.raises(PlanRefusedError) as info:
        plan(tmp_path, "executable")
    assert str(info.value).startswith("files: shipped files hold 0.0 MiB in all, above the limit")
    assert "(largest: tokenize, " in str(info.value)
    assert not (tmp_path / "job" / "out").exists()  # no lease taken, nothing written


def test_tasks_run_in_a_working_folder_that_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs, planned = plan(tmp_path, "callable")
    monkeypatch.chdir(jobs.folder)
    monkeypatch.syspath_prepend(str(jobs.folder))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    manifest = run_task(planned.map_specs[0])
    assert manifest.output_records > 0
    assert Path.cwd() == jobs.folder
    assert task_folders(tmp_path) == []


def staged_in(tmp_path: Path, name: str, data: bytes, executable: bool = False) -> StagedFile:
    path = tmp_path / "staged" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return StagedFile(name=name, uri=f"file://{path}", size=len(data), executable=executable)


def test_the_working_folder_links_the_start_folder_and_shipped_files_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = tmp_path / "job"
    (start / "pkg").mkdir(parents=True)
    (start / "pkg" / "code.py").write_text("x = 1\n")
    (start / "lookup.tsv").write_text("the job folder's\n")
    monkeypatch.chdir(start)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    staged = [
        staged_in(tmp_path, "lookup.tsv", b"shipped\n"),
        staged_in(tmp_path, "run.sh", b"#!/bin/sh\n", executable=True),
    ]
    with task_working_folder(FileSystems(), staged) as folder:
        assert folder is not None and Path.cwd() == Path(folder)
        assert sorted(os.listdir(".")) == ["lookup.tsv", "pkg", "run.sh"]
        assert Path("lookup.tsv").read_text() == "shipped\n" and not Path("lookup.tsv").is_symlink()
        assert Path("pkg/code.py").read_text() == "x = 1\n"  # relative paths still resolve
        assert os.stat("run.sh").st_mode & 0o777 == 0o755
        assert os.stat("lookup.tsv").st_mode & 0o777 == 0o644
    assert Path.cwd() == start and not Path(folder).exists()
    assert (start / "pkg" / "code.py").exists()  # links removed, never their targets
    assert (start / "lookup.tsv").read_text() == "the job folder's\n"


def test_the_working_folder_goes_when_the_task_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with (
        pytest.raises(RuntimeError),
        task_working_folder(FileSystems(), [staged_in(tmp_path, "t.tsv", b"x")]) as folder,
    ):
        raise RuntimeError("mapper failed")
    assert Path.cwd() == tmp_path and folder is not None and not Path(folder).exists()


def test_no_shipped_files_no_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with task_working_folder(FileSystems(), []) as folder:
        assert folder is None and Path.cwd() == tmp_path


def test_a_staged_file_that_is_gone_or_changed_fails_the_task_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    item = staged_in(tmp_path, "t.tsv", b"abc")
    gone = item.model_copy(update={"uri": f"file://{tmp_path}/nothing"})
    with (
        pytest.raises(TaskFailedError, match=r"^shipped file 't.tsv': file://.* is gone"),
        task_working_folder(FileSystems(), [gone]),
    ):
        pass
    changed = item.model_copy(update={"size": 4})
    with (
        pytest.raises(TaskFailedError, match=r"holds 3 bytes, the plan staged 4"),
        task_working_folder(FileSystems(), [changed]),
    ):
        pass
    assert task_folders(tmp_path) == []
    assert collections.Counter(os.listdir(tmp_path)) == collections.Counter(["staged"])
