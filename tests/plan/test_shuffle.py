"""The shuffle trusts only manifests in storage, and refuses anything incomplete."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_mapreduce.errors import ShuffleError
from airflow_mapreduce.job import parse_job_text
from airflow_mapreduce.plan.layout import RunLayout
from airflow_mapreduce.plan.manifests import read_task_spec
from airflow_mapreduce.plan.planner import RunTarget, plan_run
from airflow_mapreduce.plan.shuffle import partition_groups, shuffle_run
from airflow_mapreduce.plan.tasks import ReduceTaskSpec
from airflow_mapreduce.storage import FileSystems
from airflow_mapreduce.worker.run import run_task

JOB = parse_job_text(
    "dag_id: wc\ninput: {uri: x, split_size: 10}\nmapper: {command: [cat]}\n"
    "reducer: {command: [cat]}\nreducers: 3\noutput: x\n"
)


@pytest.fixture
def planned(tmp_path: Path) -> tuple[FileSystems, str, RunLayout]:
    for i in range(6):
        (tmp_path / "in" / f"f{i}.txt").parent.mkdir(exist_ok=True)
        (tmp_path / "in" / f"f{i}.txt").write_text(f"line {i}\n" * 5)
    files = FileSystems()
    target = RunTarget(
        "wc", "run-1", (f"file://{tmp_path}/in",), f"file://{tmp_path}/out", None, 3, 4
    )
    plan_uri, map_specs, _ = plan_run(files, JOB, target)
    assert len(map_specs) == 4  # 6 files, capped at max_map_tasks
    for uri in map_specs:
        run_task(uri, files)
    layout = RunLayout(f"file://{tmp_path}/out/_temporary", "wc", "run-1")
    return files, plan_uri, layout


def test_reduce_specs_cover_every_partition_once(planned) -> None:  # type: ignore[no-untyped-def]
    files, plan_uri, _ = planned
    specs = [files.read_json(u) for u in shuffle_run(files, plan_uri, max_reduce_tasks=2)]
    partitions = sorted(int(p) for s in specs for p in s["inputs"])
    assert partitions == [0, 1, 2]
    assert all(len(runs) == 4 for s in specs for runs in s["inputs"].values())


def test_missing_manifest_names_the_map_task_and_key(planned) -> None:  # type: ignore[no-untyped-def]
    files, plan_uri, layout = planned
    missing = layout.manifest_uri("map", 2)
    files.remove(missing)
    with pytest.raises(ShuffleError, match=rf"map\[2\] left no manifest at {missing}"):
        shuffle_run(files, plan_uri, 2)


def test_truncated_manifest_is_refused(planned) -> None:  # type: ignore[no-untyped-def]
    files, plan_uri, layout = planned
    uri = layout.manifest_uri("map", 1)
    files.write_bytes(uri, files.read_bytes(uri)[:40])
    with pytest.raises(ShuffleError, match=r"map\[1\]: manifest .* truncated or malformed"):
        shuffle_run(files, plan_uri, 2)


def test_manifest_of_another_run_is_refused(planned) -> None:  # type: ignore[no-untyped-def]
    files, plan_uri, layout = planned
    uri = layout.manifest_uri("map", 0)
    files.write_bytes(uri, files.read_bytes(uri).replace(b'"run-1"', b'"run-0"'))
    with pytest.raises(ShuffleError, match=r"map\[0\]: manifest .* belongs to .*run-0"):
        shuffle_run(files, plan_uri, 2)


@pytest.mark.parametrize(("partitions", "tasks"), [(3, 2), (10, 3), (5, 8), (1, 1)])
def test_partition_groups_are_contiguous_and_complete(partitions: int, tasks: int) -> None:
    groups = partition_groups(partitions, tasks)
    assert len(groups) == min(partitions, tasks)
    assert [p for g in groups for p in g] == list(range(partitions))
    assert max(map(len, groups)) - min(map(len, groups)) <= 1


def test_task_specs_name_every_place_their_task_touches(planned, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """What decides whether a worker gets storage credentials (airflow/connections.py)."""
    files, plan_uri, _ = planned
    [reduce_uri, *_] = shuffle_run(files, plan_uri, max_reduce_tasks=2)
    reduce_spec = read_task_spec(files, reduce_uri)
    assert isinstance(reduce_spec, ReduceTaskSpec)
    touched = reduce_spec.storage_uris()
    assert {u for runs in reduce_spec.inputs.values() for u in runs} < set(touched)
    assert set(reduce_spec.outputs.values()) < set(touched) and reduce_spec.task_dir in touched
    # Map-only, writing to other storage than its work area (e.g. S3): the output counts.
    map_only = parse_job_text(
        "dag_id: mo\ninput: {uri: x}\nmapper: {command: [cat]}\nreducers: 0\noutput: x\n"
    )
    target = RunTarget(
        "mo", "r", (f"file://{tmp_path}/in",), "memory://mo/out", f"file://{tmp_path}/w", 0, 2
    )
    _, [map_uri, *_], _ = plan_run(files, map_only, target)
    map_spec = read_task_spec(files, map_uri)
    assert [u for u in map_spec.storage_uris() if u.startswith("memory://")] == [
        map_spec.output_uri
    ]
