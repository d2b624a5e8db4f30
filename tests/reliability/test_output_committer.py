"""The output committer never loses data: what users type, what sits in the output folder,
two runs into one output, a commit killed half-way (issue 19, items 1, 2, 3 and 5).

Runs go through `airflow-mapreduce run` as a subprocess, as a user runs them; results are
compared with an independent collections.Counter of the input.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_mapreduce.errors import CommitError
from airflow_mapreduce.job.loader import load_job_file
from airflow_mapreduce.plan.commit import commit_run
from airflow_mapreduce.plan.planner import RunTarget, plan_run
from airflow_mapreduce.storage import FileSystems
from tests.wordcount import committed_names, output_counts

REPO = Path(__file__).resolve().parents[2]
CLI = [str(Path(sys.executable).parent / "airflow-mapreduce")]

JOB = """\
dag_id: committer
input: {uri: in}
mapper: {command: [python3, mapreduce_jobs/wordcount/mapper.py]}
reducer: {command: [python3, mapreduce_jobs/wordcount/reducer_current_word.py]}
reducers: 3
output: out
"""


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    """A job folder as a user has one: the YAML, its scripts, an input folder."""
    folder = tmp_path / "job"
    shutil.copytree(REPO / "dags" / "mapreduce_jobs", folder / "mapreduce_jobs")
    (folder / "job.yaml").write_text(JOB)
    (folder / "in").mkdir()
    words = ["apple", "pear", "fig", "plum", "kiwi", "lime"]
    for index in range(3):
        lines = [" ".join(words[(i + index) % 6 : (i + index) % 6 + 3]) for i in range(200)]
        (folder / "in" / f"f{index}.txt").write_text("\n".join(lines) + "\n")
    return folder


def counted(folder: Path) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for path in folder.iterdir():
        counts.update(path.read_text().split())
    return counts


def run_cli(job_dir: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "run", str(job_dir / "job.yaml"), "--workers", "2", *args],
        cwd=cwd or job_dir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def names(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("form", ["plain", "file_uri", "relative", "dotted"])
def test_every_spelling_of_an_output_path_keeps_its_parts(
    job_dir: Path, tmp_path: Path, form: str
) -> None:
    out = tmp_path / "typed_out"
    given = {
        "plain": str(out),
        "file_uri": f"file://{out}",
        "relative": os.path.relpath(out, job_dir),
        "dotted": f"{tmp_path}//typed_out/./",
    }[form]
    done = run_cli(job_dir, "--output", given)
    assert done.returncode == 0, done.stderr
    assert output_counts(out) == counted(job_dir / "in")
    assert names(out) == committed_names(3)


def test_unknown_objects_in_the_output_are_refused_and_kept(job_dir: Path) -> None:
    out = job_dir / "out"
    (out / "notes").mkdir(parents=True)
    foreign = {
        "part-README.txt": b"read me",
        "part-r-00000.avro": b"Obj\x01 another tool's",
        "notes/todo.txt": b"keep",
        "_bad_records/from-elsewhere.jsonl": b"{}\n",
        "_temporary/0/task/part-0": b"a Hadoop job's work area",
    }
    for name, data in foreign.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    before = names(out)

    done = run_cli(job_dir)
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert "holds 4 object(s) that no earlier run of this job recorded" in message
    for name in ("part-README.txt", "part-r-00000.avro", "notes", "from-elsewhere.jsonl"):
        assert name in message
    assert "overwrite_output: true" in message
    assert names(out) == before  # nothing touched, not even _SUCCESS or a lease
    for name, data in foreign.items():
        assert (out / name).read_bytes() == data

    # The setting that allows it: visible objects are replaced, hidden ones left alone.
    (job_dir / "job.yaml").write_text(JOB + "overwrite_output: true\n")
    done = run_cli(job_dir)
    assert done.returncode == 0, done.stderr
    assert output_counts(out) == counted(job_dir / "in")
    assert (out / "_temporary/0/task/part-0").read_bytes() == foreign["_temporary/0/task/part-0"]
    assert not (out / "part-README.txt").exists() and not (out / "notes").exists()


def test_a_rerun_replaces_only_what_the_earlier_run_recorded(job_dir: Path) -> None:
    out = job_dir / "out"
    assert run_cli(job_dir).returncode == 0
    (out / ".hidden-by-another-tool").write_bytes(b"x")
    done = run_cli(job_dir, "--reducers", "2")  # part-00002 of the first run is stale now
    assert done.returncode == 0, done.stderr
    assert names(out) == [
        ".hidden-by-another-tool", "_SUCCESS", "_job_history.json", "_manifest.json",
        "part-00000", "part-00001",
    ]  # fmt: skip
    assert output_counts(out) == counted(job_dir / "in")

    # A manifest of another job does not make its parts this job's.
    manifest = (out / "_manifest.json").read_text()
    (out / "_manifest.json").write_text(manifest.replace('"committer"', '"someone_else"'))
    done = run_cli(job_dir)
    assert done.returncode == 1
    assert "_SUCCESS, _job_history.json, _manifest.json, part-00000" in " ".join(
        done.stderr.split()
    )


@pytest.mark.parametrize(
    ("input_arg", "output_arg", "relation"),
    [
        ("in", "in", "is the input"),
        ("in", "in/result", "lies inside the input"),
        ("in/f0.txt", ".", "holds the input"),
        ("in/*.txt", "in/out", "lies inside the input"),
    ],
)
def test_output_overlapping_the_input_is_refused(
    job_dir: Path, input_arg: str, output_arg: str, relation: str
) -> None:
    before = {p: p.read_bytes() for p in (job_dir / "in").iterdir()}
    done = run_cli(job_dir, "--input", input_arg, "--output", output_arg)
    assert done.returncode == 1
    assert relation in " ".join(done.stderr.split())
    assert {p: p.read_bytes() for p in (job_dir / "in").iterdir()} == before


def test_a_second_run_into_a_busy_output_fails_fast_and_the_first_completes(
    job_dir: Path,
) -> None:
    """Run A's mapper waits for a go file; run B into the same output must fail before
    any map task, and A, released, commits the full result."""
    go = job_dir / "go"
    started = job_dir / "started"
    (job_dir / "waiting_mapper.py").write_text(
        "import pathlib, runpy, sys, time\n"
        f"pathlib.Path({str(started)!r}).touch()\n"
        f"while not pathlib.Path({str(go)!r}).exists():\n"
        "    time.sleep(0.05)\n"
        "runpy.run_path('mapreduce_jobs/wordcount/mapper.py', run_name='__main__')\n"
    )
    (job_dir / "job.yaml").write_text(
        JOB.replace("mapreduce_jobs/wordcount/mapper.py", "waiting_mapper.py")
    )
    first = subprocess.Popen(
        [*CLI, "run", str(job_dir / "job.yaml"), "--run-id", "first"],
        cwd=job_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "run A's mapper never started"
            time.sleep(0.05)
        second = run_cli(job_dir, "--run-id", "second")
        assert second.returncode == 1
        message = " ".join(second.stderr.split())
        assert "is being written by run first of committer" in message
        assert not (job_dir / "out" / "_temporary" / "committer" / "second").exists()
        go.touch()
        _, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert output_counts(job_dir / "out") == counted(job_dir / "in")
    assert not (job_dir / "out" / "_IN_PROGRESS").exists()


def test_the_lease_of_a_gone_process_is_taken_over(job_dir: Path) -> None:
    out = job_dir / "out"
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid names no process now
    out.mkdir()
    lease = {"dag_id": "committer", "run_id": "killed", "runner": "cli", "pid": gone.pid}
    lease |= {"host": socket.gethostname(), "taken_at": "2026-01-01T00:00:00Z"}
    (out / "_IN_PROGRESS").write_text(json.dumps(lease))
    done = run_cli(job_dir)
    assert done.returncode == 0, done.stderr
    assert output_counts(out) == counted(job_dir / "in")


def test_a_run_whose_lease_was_taken_over_does_not_commit(job_dir: Path) -> None:
    """Two plans that raced past each other: only the lease holder may commit."""
    job = load_job_file(job_dir / "job.yaml")
    files = FileSystems()

    def planned(run_id: str) -> str:
        target = RunTarget(job.dag_id, run_id, (job.input.uri,), job.output, None, 3, 2)
        plan_uri, specs, _ = plan_run(files, job, target, is_running=lambda lease: False)
        for spec in specs:
            subprocess.run(
                [sys.executable, "-m", "airflow_mapreduce.worker", spec], cwd=job_dir, check=True
            )
        return plan_uri

    first, second = planned("a"), planned("b")
    from airflow_mapreduce.plan.shuffle import shuffle_run

    for plan_uri in (first, second):
        for spec in shuffle_run(files, plan_uri, 8):
            subprocess.run(
                [sys.executable, "-m", "airflow_mapreduce.worker", spec], cwd=job_dir, check=True
            )
    with pytest.raises(CommitError, match="taken over by run b of committer"):
        commit_run(files, first)
    assert not (job_dir / "out" / "_SUCCESS").exists()
    assert (job_dir / "out" / "_temporary" / "committer" / "a" / "plan.json").exists()
    commit_run(files, second)
    assert output_counts(job_dir / "out") == counted(job_dir / "in")


KILLED_COMMIT = """\
import os, shutil, sys
from airflow_mapreduce.plan.commit import commit_run
from airflow_mapreduce.storage import FileSystems

real = shutil.copyfileobj
def copy_then_die(src, dst, length=0):
    if os.environ["KILL_AT"] == "part":
        dst.write(src.read(5))
        dst.flush()
        os.kill(os.getpid(), 9)
    real(src, dst, length)
shutil.copyfileobj = copy_then_die

if os.environ["KILL_AT"] == "success":
    real_open = open
    def open_then_die(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        if "_SUCCESS.tmp-" in str(path):
            os.kill(os.getpid(), 9)
        return f
    import builtins
    builtins.open = open_then_die
commit_run(FileSystems(), sys.argv[1])
"""


@pytest.mark.parametrize("kill_at", ["part", "success"])
def test_a_killed_commit_is_cleaned_up_by_its_retry(job_dir: Path, kill_at: str) -> None:
    """SIGKILL in the middle of writing a part or _SUCCESS leaves a temporary file; the
    retried commit leaves exactly the objects of a clean run."""
    job = load_job_file(job_dir / "job.yaml")
    files = FileSystems()
    target = RunTarget(job.dag_id, "r", (job.input.uri,), job.output, None, 3, 2)
    plan_uri, specs, _ = plan_run(files, job, target)
    from airflow_mapreduce.plan.shuffle import shuffle_run

    for spec in specs:
        subprocess.run(
            [sys.executable, "-m", "airflow_mapreduce.worker", spec], cwd=job_dir, check=True
        )
    for spec in shuffle_run(files, plan_uri, 8):
        subprocess.run(
            [sys.executable, "-m", "airflow_mapreduce.worker", spec], cwd=job_dir, check=True
        )
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_COMMIT, plan_uri],
        env={**os.environ, "KILL_AT": kill_at},
        capture_output=True,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    out = job_dir / "out"
    assert any(".tmp-" in name for name in names(out)), names(out)
    assert not (out / "_SUCCESS").exists()

    commit_run(files, plan_uri)
    assert names(out) == committed_names(3)
    assert output_counts(out) == counted(job_dir / "in")


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("s3://AKIAKEY:Zq9-token-Zq9@bucket/out", "holds credentials"),
        ("s3://AKIAKEY:Zq9-token/with/slash-Zq9@bucket/out", "holds credentials"),
        ("relative/out", "has no folder to be relative to"),
    ],
)
def test_the_python_api_gets_the_same_canonical_form(
    job_dir: Path, output: str, message: str
) -> None:
    """A RunTarget built in Python goes through the same canonical form; a secret in it is
    never echoed."""
    from airflow_mapreduce.errors import PlanError

    job = load_job_file(job_dir / "job.yaml")
    target = RunTarget(job.dag_id, "r", (job.input.uri,), output, None, 3, 2)
    with pytest.raises(PlanError, match=message) as info:
        plan_run(FileSystems(), job, target)
    assert "Zq9" not in str(info.value) and "AKIAKEY" not in str(info.value)
    assert not (job_dir / "out").exists()
