"""Bounded memory: a partition many times the sort buffer goes through map and reduce.

The whole job runs in a child process whose peak RSS (VmHWM in /proc) is compared with the
same child on a tiny input: the difference must stay within the sort buffer plus a
fixed allowance, far below what holding the partition in memory would take.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

BUDGET = 4 * 1024**2
ALLOWANCE = 24 * 1024**2  # read blocks, pipe and write buffers, merge heads, allocator slack

CHILD = """
import json, sys
from airflow_mapreduce.plan.commit import commit_run
from airflow_mapreduce.plan.planner import RunTarget, plan_run
from airflow_mapreduce.plan.shuffle import shuffle_run
from airflow_mapreduce.job import parse_job_text
from airflow_mapreduce.storage import FileSystems
from airflow_mapreduce.worker.run import run_task

def peak_kib():
    # VmHWM: this process's own peak RSS (getrusage's maxrss inherits the parent's at fork).
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))

job_text, input_uri, output_uri = sys.argv[1:4]
job = parse_job_text(job_text)
files = FileSystems()
target = RunTarget("mem", "r", (input_uri,), output_uri, None, 1, 1)
plan_uri, maps, _ = plan_run(files, job, target)
manifests = [run_task(uri, files) for uri in maps]
manifests += [run_task(uri, files) for uri in shuffle_run(files, plan_uri, 1)]
result = commit_run(files, plan_uri)
print(json.dumps({
    "peak_kib": peak_kib(),
    # what the tasks reported (each its own peak) and the commit's max of them
    "task_peak_kib": max(m.peak_memory.worker_bytes for m in manifests) // 1024,
    "commands_peak_kib": max(m.peak_memory.commands_bytes for m in manifests) // 1024,
    "committed_peak_kib": max(p.worker_bytes for p in result.peak_memory.values()) // 1024,
    "records": result.records,
    "spills": result.counters["airflow-mapreduce"].get("spills", 0),
}))
"""


# Identity steps as Python callables: the buffer then holds Python objects, not lines.
IDENTITY = """
def mapper(_key, line):
    key, _, value = line.partition("\\t")
    yield key, value

def reducer(key, values):
    for value in values:
        yield key, value
"""
STEPS = {
    "command": "mapper: {command: [cat]}\nreducer: {command: [cat]}\n",
    # GNU sort ahead of the combiner (worker/sort_command.py): a quarter of the budget
    "command+combiner": "mapper: {command: [cat]}\ncombiner: {command: [cat]}\n"
    "reducer: {command: [cat]}\n",
    "callable": "mapper: {callable: identity:mapper}\nreducer: {callable: identity:reducer}\n",
}


def run_in_child(job_text: str, folder: Path, modules: Path) -> dict[str, int]:
    """The job over folder/in.txt into folder/out, run by CHILD in a new process that
    imports the job's callables from `modules`; what CHILD measured."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, job_text, f"file://{folder}/in.txt", f"file://{folder}/out"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(modules)},
    )
    result: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_child(
    tmp_path: Path, name: str, data: bytes, sort_buffer: int, kind: str
) -> dict[str, int]:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "in.txt").write_bytes(data)
    (tmp_path / "identity.py").write_text(IDENTITY)
    job_text = (
        "dag_id: mem\ninput: {uri: unused, split_size: 1GiB}\noutput: unused\n"
        f"{STEPS[kind]}reducers: 1\nmemory: {{sort_buffer: {sort_buffer}}}\n"
    )
    result = run_in_child(job_text, folder, modules=tmp_path)
    out = folder / "out" / "part-00000"
    lines = out.read_bytes().splitlines()
    assert len(lines) == result["records"] == data.count(b"\n")
    keys = [line.split(b"\t")[0] for line in lines]
    assert keys == sorted(keys)
    return result


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["command", "command+combiner", "callable"])
def test_a_partition_many_times_the_sort_buffer_stays_within_budget(
    tmp_path: Path, kind: str
) -> None:
    rng = random.Random(11)
    lines = [b"k%09d\tv%d" % (rng.randrange(10**9), i) for i in range(1_500_000)]
    data = b"\n".join(lines) + b"\n"
    assert len(data) >= 5 * BUDGET
    small = run_child(tmp_path, "small", b"\n".join(lines[:1000]) + b"\n", BUDGET, kind)
    big = run_child(tmp_path, "big", data, BUDGET, kind)
    assert big["spills"] >= 5
    print(f"peak RSS: small {small}, big {big}")
    # the process's own; the manifests'; the largest of the commands' (sort's, if it ran)
    for measured in ("peak_kib", "task_peak_kib", "commands_peak_kib"):
        grown = (big[measured] - small[measured]) * 1024
        assert grown <= BUDGET + ALLOWANCE, (
            f"{measured} grew by {grown / 2**20:.1f} MiB for a {len(data) / 2**20:.0f} MiB "
            f"partition; expected at most the {BUDGET / 2**20:.0f} MiB sort buffer + "
            f"{ALLOWANCE / 2**20:.0f} MiB"
        )
    for result in (small, big):
        assert result["committed_peak_kib"] == result["task_peak_kib"] <= result["peak_kib"]
