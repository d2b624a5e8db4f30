"""A task collects garbage less often (worker/memory.py fewer_collections), but still
collects it: reference cycles a mapper makes per record do not pile up."""

from __future__ import annotations

import gc
from pathlib import Path

from airflow_mapreduce.job import parse_job_text
from airflow_mapreduce.worker.memory import YOUNG_OBJECTS_PER_COLLECTION
from tests.worker.test_memory_bound import run_in_child

MIB = 1 << 20
RECORDS = 400_000
PAYLOAD = 1024  # bytes each record's cycle holds: 400 MB in all, were cycles never freed

CALLABLES = f"""
import gc


def threshold_mapper(_key, line):
    yield line, gc.get_threshold()[0]


def cycle_mapper(_key, line):
    node = [bytearray({PAYLOAD})]
    node.append(node)  # a cycle: reference counting alone never frees it
    yield line[:2], 1
"""


def _write_job_module(folder: Path) -> None:
    (folder / "gc_callables.py").write_text(CALLABLES)


def test_a_task_raises_the_collection_threshold_and_restores_it(
    run_job,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    _write_job_module(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("x\ny\n")
    job = parse_job_text(
        "dag_id: gc\ninput: {uri: unused}\noutput: unused\nreducers: 0\n"
        "mapper: {callable: gc_callables:threshold_mapper}\n"
    )
    before = gc.get_threshold()
    assert before[0] != YOUNG_OBJECTS_PER_COLLECTION
    result = run_job(job, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    seen = {
        line.split("\t")[1]
        for part in result.files
        for line in Path(part.uri.removeprefix("file://")).read_text().splitlines()
    }
    assert seen == {str(YOUNG_OBJECTS_PER_COLLECTION)}
    assert gc.get_threshold() == before


def run_cycles_job(tmp_path: Path, name: str, records: int) -> dict[str, int]:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "in.txt").write_bytes(b"".join(b"k%d\n" % (i % 50) for i in range(records)))
    job_text = (
        "dag_id: mem\ninput: {uri: unused, split_size: 1GiB}\noutput: unused\nreducers: 1\n"
        "mapper: {callable: gc_callables:cycle_mapper}\n"
        "reducer: {reduce_by: 'operator:add'}\n"
    )
    result = run_in_child(job_text, folder, modules=tmp_path)
    assert result["records"] == 10  # keys k0..k9: two characters of each line
    return result


def test_reference_cycles_a_mapper_makes_per_record_are_still_collected(tmp_path: Path) -> None:
    _write_job_module(tmp_path)
    small = run_cycles_job(tmp_path, "small", 1_000)
    big = run_cycles_job(tmp_path, "big", RECORDS)
    grown = (big["task_peak_kib"] - small["task_peak_kib"]) * 1024
    # About one collection's worth of young objects waits to be freed (a cycle is one: its
    # list; the bytearray is no container), each ~200 bytes beyond its payload; allow
    # twice that for the allocator's slack.
    bound = 2 * YOUNG_OBJECTS_PER_COLLECTION * (PAYLOAD + 200) + 16 * MIB
    assert bound < RECORDS * PAYLOAD // 2, "the bound must tell collected from never freed"
    assert grown <= bound, f"peak grew by {grown / MIB:.0f} MiB for {RECORDS} cycles"
