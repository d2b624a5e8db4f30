"""Shuffle/commit refuse missing, truncated or foreign manifests; cleanup and the janitor;
the commit's _job_history.json (per task what it read and wrote, owned like _manifest.json).

Each storage test runs on local files and on the real S3 server (SeaweedFS).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from airflow_mapreduce.cli import app
from airflow_mapreduce.errors import CommitError, PlanRefusedError, ShuffleError
from airflow_mapreduce.janitor import find_stale_runs, parse_duration
from airflow_mapreduce.job import parse_job_text
from airflow_mapreduce.plan.commit import commit_run
from airflow_mapreduce.plan.history import phase_totals, read_job_history
from airflow_mapreduce.plan.layout import OutputLayout, RunLayout
from airflow_mapreduce.plan.manifests import read_plan
from airflow_mapreduce.plan.planner import RunTarget, plan_run
from airflow_mapreduce.plan.shuffle import shuffle_run
from airflow_mapreduce.storage import FileSystems, UnsafeUriError
from airflow_mapreduce.worker.run import run_task

from .conftest import DAGS, WORDCOUNT_JOB

CALLABLE_JOB = (
    "dag_id: wc_manifests\ninput: {uri: unused, split_size: 48KiB}\n"
    "mapper: {callable: mapreduce_jobs.wordcount_callables:mapper}\n"
    "reducer: {callable: mapreduce_jobs.wordcount_callables:reducer}\n"
    "reducers: 2\noutput: unused\n"
)


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.integration)])
def store(request, tmp_path, small_corpus, monkeypatch) -> Iterator[tuple[FileSystems, str, str]]:  # type: ignore[no-untyped-def]
    """(files, input URI, a fresh root URI) on local disk or S3."""
    monkeypatch.syspath_prepend(str(DAGS))
    if request.param == "file":
        yield FileSystems(), f"file://{small_corpus.folder}", f"file://{tmp_path}"
        return
    server = request.getfixturevalue("s3_server")
    s3 = server.filesystem()
    bucket = f"manifests-{abs(hash(request.node.name)) % 10**8}"
    s3.mkdir(bucket)
    s3.put(f"{small_corpus.folder}/", f"{bucket}/input/", recursive=True)
    yield FileSystems({"s3": s3}), f"s3://{bucket}/input/", f"s3://{bucket}/run"


def planned(
    files: FileSystems, input_uri: str, root: str, run_id: str = "r1", job: str = CALLABLE_JOB
):  # type: ignore[no-untyped-def]
    spec = parse_job_text(job)
    target = RunTarget(spec.dag_id, run_id, (input_uri,), f"{root}/out", None, spec.reducers, 3)
    # Each test's runs are over before the next plans (the lease of an earlier one is stale).
    plan_uri, map_specs, _ = plan_run(files, spec, target, is_running=lambda lease: False)
    return plan_uri, map_specs


def test_missing_manifest_names_task_and_key(store) -> None:  # type: ignore[no-untyped-def]
    files, input_uri, root = store
    plan_uri, map_specs = planned(files, input_uri, root)
    for uri in map_specs[:-1]:
        run_task(uri, files)
    last = len(map_specs) - 1
    plan = read_plan(files, plan_uri)
    key = RunLayout(plan.work_uri, plan.dag_id, plan.run_id).manifest_uri("map", last)
    with pytest.raises(ShuffleError, match=rf"map\[{last}\] left no manifest at {key}"):
        shuffle_run(files, plan_uri, 2)
    assert not files.exists(RunLayout(plan.work_uri, plan.dag_id, plan.run_id).shuffle_uri)


def test_truncated_manifest_is_refused(store) -> None:  # type: ignore[no-untyped-def]
    files, input_uri, root = store
    plan_uri, map_specs = planned(files, input_uri, root)
    for uri in map_specs:
        run_task(uri, files)
    plan = read_plan(files, plan_uri)
    key = RunLayout(plan.work_uri, plan.dag_id, plan.run_id).manifest_uri("map", 1)
    data = files.read_bytes(key)
    files.write_bytes(key, data[: len(data) // 2])
    with pytest.raises(ShuffleError, match=rf"map\[1\]: manifest {key} is truncated"):
        shuffle_run(files, plan_uri, 2)


def test_manifest_of_another_run_is_refused(store) -> None:  # type: ignore[no-untyped-def]
    files, input_uri, root = store
    other_plan, other_specs = planned(files, input_uri, root, run_id="other")
    plan_uri, map_specs = planned(files, input_uri, root, run_id="r1")
    for uri in [*map_specs, other_specs[0]]:
        run_task(uri, files)
    plan, other = read_plan(files, plan_uri), read_plan(files, other_plan)
    key = RunLayout(plan.work_uri, plan.dag_id, plan.run_id).manifest_uri("map", 0)
    foreign = RunLayout(other.work_uri, other.dag_id, other.run_id).manifest_uri("map", 0)
    files.write_bytes(key, files.read_bytes(foreign))  # e.g. a work area shared by mistake
    with pytest.raises(ShuffleError, match=rf"map\[0\]: manifest {key} belongs to .*'other'"):
        shuffle_run(files, plan_uri, 2)


@pytest.mark.parametrize(
    ("phase", "field", "target", "what"),
    [
        ("reduce", "part", "foreign", "an output part"),  # any object the commit could copy
        ("reduce", "part", "escaping", "an output part"),  # in the attempt folder, then '..'
        ("map", "bad_records_uri", "escaping", "bad records"),
    ],
)
def test_manifest_pointing_outside_its_attempts_is_refused(  # type: ignore[no-untyped-def]
    store, phase, field, target, what
) -> None:
    files, input_uri, root = store
    plan_uri, map_specs = planned(files, input_uri, root)
    for uri in map_specs:
        run_task(uri, files)
    [reduce_spec] = shuffle_run(files, plan_uri, 1)
    run_task(reduce_spec, files)
    plan = read_plan(files, plan_uri)
    layout = RunLayout(plan.work_uri, plan.dag_id, plan.run_id)
    key = layout.manifest_uri(phase, 0)
    manifest = json.loads(files.read_bytes(key))
    uri = (
        map_specs[0]
        if target == "foreign"
        else f"{layout.task_dir(phase, 0)}/attempt-x/../../../../{plan_uri.rsplit('/', 1)[1]}"
    )
    if field == "part":
        manifest["files"][0]["uri"] = uri
    else:
        manifest[field] = uri
    files.write_bytes(key, json.dumps(manifest).encode())
    with pytest.raises(CommitError, match=rf"{phase}\[0\]: manifest names {what} at .* outside"):
        commit_run(files, plan_uri)
    assert not files.exists(f"{root}/out/_SUCCESS")
    assert not files.exists(f"{root}/out/_bad_records")


@pytest.mark.parametrize("keep", [False, True])
def test_commit_removes_intermediate_unless_kept(store, keep) -> None:  # type: ignore[no-untyped-def]
    files, input_uri, root = store
    job = CALLABLE_JOB + f"keep_intermediate: {json.dumps(keep)}\n"
    plan_uri, map_specs = planned(files, input_uri, root, job=job)
    for uri in map_specs:
        run_task(uri, files)
    for uri in shuffle_run(files, plan_uri, 2):
        run_task(uri, files)
    commit_run(files, plan_uri)
    files.fs(root).invalidate_cache()  # s3fs caches listings
    # Objects, not listings: SeaweedFS shows emptied folders as prefixes; S3 has none.
    names = sorted(u.removeprefix(f"{root}/out/") for u in files.find_all(f"{root}/out"))
    data = ["_SUCCESS", "_job_history.json", "_manifest.json", "part-00000", "part-00001"]
    if keep is True:
        assert any(n.startswith("_temporary/") for n in names)
        names = [n for n in names if not n.startswith("_temporary/")]
    assert names == data
    # A retried commit (e.g. the task died after _SUCCESS) returns the same result.
    assert commit_run(files, plan_uri).files == commit_run(files, plan_uri).files


def test_a_commit_retried_after_a_partial_cleanup_finishes(store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The cleanup deletes plan.json last; a commit killed before that retries cleanly."""
    files, input_uri, root = store
    plan_uri, map_specs = planned(files, input_uri, root)
    for uri in map_specs:
        run_task(uri, files)
    for uri in shuffle_run(files, plan_uri, 2):
        run_task(uri, files)
    real_remove = files.remove

    def dies_at_the_plan(uri: str, recursive: bool = False) -> None:
        if uri == plan_uri:
            raise KeyboardInterrupt("killed before plan.json went")
        real_remove(uri, recursive=recursive)

    monkeypatch.setattr(files, "remove", dies_at_the_plan)
    with pytest.raises(KeyboardInterrupt):
        commit_run(files, plan_uri)
    monkeypatch.setattr(files, "remove", real_remove)
    assert files.exists(plan_uri)  # everything else of the work area is gone
    retried = commit_run(files, plan_uri)
    assert sorted(p.partition for p in retried.files) == [0, 1]
    assert not files.exists(plan_uri)


def test_failed_run_keeps_intermediate_until_the_janitor_removes_it(
    tmp_path: Path, small_corpus, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(DAGS))
    files = FileSystems()
    work = f"file://{tmp_path}/work"
    spec = parse_job_text(CALLABLE_JOB)
    for run_id in ("old", "new"):
        target = RunTarget(
            spec.dag_id,
            run_id,
            (f"file://{small_corpus.folder}",),
            f"file://{tmp_path}/out-{run_id}",
            work,
            2,
            3,
        )
        _, map_specs, _ = plan_run(files, spec, target)
        run_task(map_specs[0], files)  # then the run fails: no commit
    old_root = RunLayout(work, spec.dag_id, "old").run_root
    stamp = (dt.datetime.now() - dt.timedelta(days=8)).timestamp()
    for path in Path(old_root.removeprefix("file://")).rglob("*"):
        os.utime(path, (stamp, stamp))

    stale = find_stale_runs(files, work, parse_duration("7d"))
    assert [r.uri for r in stale] == [old_root]
    listed = CliRunner().invoke(app, ["janitor", "--work", work, "--older-than", "7d"])
    assert listed.exit_code == 0, listed.output
    assert old_root in listed.output and "1 run(s)" in listed.output
    assert Path(old_root.removeprefix("file://")).exists()  # listing deletes nothing
    deleted = CliRunner().invoke(app, ["janitor", "--work", work, "--older-than", "7d", "--delete"])
    assert deleted.exit_code == 0, deleted.output
    assert not Path(old_root.removeprefix("file://")).exists()
    assert Path(RunLayout(work, spec.dag_id, "new").run_root.removeprefix("file://")).exists()
    bad = CliRunner().invoke(app, ["janitor", "--work", work, "--older-than", "soon"])
    assert bad.exit_code != 0 and "7d" in bad.output


@pytest.mark.parametrize(
    "uri",
    [
        "file:///data/../etc/out",
        "s3://bucket/a/../../other-bucket/x",
        "http://example.com/out",
        "ftp://host/out",
        "simplecache::s3://bucket/out",
        "file:///",
        "s3://bucket/a\\..\\b",
    ],
)
def test_output_and_work_uris_cannot_escape(uri: str) -> None:
    with pytest.raises(UnsafeUriError):
        OutputLayout(uri)
    with pytest.raises(UnsafeUriError):
        RunLayout(uri, "dag", "run")


def test_run_ids_and_dag_ids_stay_inside_the_work_root() -> None:
    layout = RunLayout("s3://bucket/work", "../../x", "/abs/../../run")
    assert layout.run_root.startswith("s3://bucket/work/")
    assert ".." not in layout.run_root.removeprefix("s3://bucket/work/").split("/")


def test_input_with_an_odd_scheme_is_rejected(tmp_path: Path) -> None:
    spec = parse_job_text(WORDCOUNT_JOB)
    target = RunTarget(
        spec.dag_id, "r", ("http://127.0.0.1:9/x",), f"file://{tmp_path}/o", None, 3, 2
    )
    with pytest.raises(PlanRefusedError, match="unsupported URL scheme 'http'"):
        plan_run(FileSystems(), spec, target)


def test_the_history_holds_every_task_as_counted_from_the_input(store, small_corpus) -> None:  # type: ignore[no-untyped-def]
    files, input_uri, root = store
    before = time.time()
    plan_uri, map_specs = planned(files, input_uri, root)
    for uri in map_specs:
        run_task(uri, files)
    for uri in shuffle_run(files, plan_uri, 2):
        run_task(uri, files)
    manifest = commit_run(files, plan_uri)
    assert manifest.history == f"{root}/out/_job_history.json"
    history = read_job_history(files, manifest.history)
    assert history is not None

    texts = [p.read_bytes() for p in small_corpus.folder.iterdir()]
    lines = sum(len(t.split(b"\n")) - t.endswith(b"\n") for t in texts if t)
    size = sum(p.stat().st_size for p in small_corpus.folder.iterdir())
    maps, reduces = phase_totals(history.map), phase_totals(history.reduce)
    assert [t.index for t in history.map] == list(range(len(map_specs)))
    assert (maps.input_records, maps.input_bytes) == (lines, size)
    assert maps.output_records == sum(small_corpus.counts.values())  # one pair per word
    assert reduces.input_records == maps.output_records
    assert reduces.output_records == len(small_corpus.counts) == manifest.records
    assert reduces.output_bytes == manifest.bytes
    assert [p.records for p in history.partitions] == [p.records for p in manifest.files]
    assert history.counters == manifest.counters
    for task in [*history.map, *history.reduce]:
        assert task.started_at is not None and task.finished_at is not None
        assert before <= task.started_at <= task.finished_at <= time.time()
        assert task.peak_memory is not None and task.peak_memory.worker_bytes > 0
    assert all(t.source.startswith("split ") for t in history.map)
    assert all(t.source.startswith("partition") for t in history.reduce)


def test_a_foreign_job_history_is_refused_not_replaced(store) -> None:  # type: ignore[no-untyped-def]
    files, input_uri, root = store
    foreign = f"{root}/out/_job_history.json"
    files.write_bytes(foreign, b'{"written by": "another tool"}')
    with pytest.raises(PlanRefusedError, match=r"_job_history\.json"):
        planned(files, input_uri, root)
    assert files.read_bytes(foreign) == b'{"written by": "another tool"}'
