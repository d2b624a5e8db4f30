"""Instructions per process of one map task of a bench job, by `perf` (Linux).

    .venv/bin/python bench/task_instructions.py c1 [--file linux-000.txt] [--runs 2]

Runs the first map task of a `wordcount_bench.JOBS` row over one corpus file, in this
process, under `perf record -e instructions`, and prints each process's instructions
in the order the processes started (for (c1): the worker, mapper.py, sort, the combiner).
Instructions, unlike time, hardly change when the machine is busy, so one change can be
compared with the one before it. Needs the bench's corpus (run wordcount_bench.py first)
and `perf` allowed to count (perf_event_paranoid <= 2, or root).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import wordcount_bench as bench

PERIOD = 10_000_000  # instructions per sample (denser sampling gets throttled)


def run_one_task(label: str, path: Path, out: Path) -> None:
    from airflow_mapreduce.job import parse_job_text
    from airflow_mapreduce.plan.planner import RunTarget, plan_run
    from airflow_mapreduce.storage import FileSystems
    from airflow_mapreduce.worker.run import run_task

    bench._init_worker(out.parent / "task-log.txt")
    job = parse_job_text(next(text for key, text in bench.JOBS.items() if key.startswith(label)))
    target = RunTarget("bench", "instructions", (f"file://{path}",), f"file://{out}", None, 4, 1)
    _, specs, _ = plan_run(FileSystems(), job, target)
    run_task(specs[0])


def measure(label: str, path: Path) -> list[tuple[str, float]]:
    """(process name, 10^9 instructions) per process, in the order they started."""
    with tempfile.TemporaryDirectory(prefix="amr-instructions-") as folder:
        data = Path(folder) / "perf.data"
        task = [sys.executable, __file__, "--task", label, "--file", str(path), "--out", folder]
        record = ["perf", "record", "-q", "-e", "instructions", "-c", str(PERIOD), "-o"]
        subprocess.run([*record, str(data), "--", *task], check=True)
        script = ["perf", "script", "-i", str(data), "-F", "pid,comm"]
        samples = subprocess.run(script, check=True, capture_output=True, text=True).stdout
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in samples.splitlines():
        comm, pid = line.rsplit(maxsplit=1)
        counts[(pid, comm.strip())] += 1  # insertion order: first sample first
    return [(comm, n * PERIOD / 1e9) for (_, comm), n in counts.items() if n * PERIOD >= 5e7]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("label", help="a wordcount_bench.JOBS row, by its start (e.g. c1)")
    parser.add_argument("--file", default="linux-000.txt", help="a file of the bench corpus")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/airflow-mapreduce-bench"))
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--task", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = args.cache / "corpus" / args.file
    if args.task:  # the measured process
        run_one_task(args.label, path, args.out / "out")
        return 0
    if shutil.which("perf") is None:
        sys.exit("needs `perf` (Debian: apt-get install linux-perf)")
    if not path.exists():
        sys.exit(f"{path} not found: run bench/wordcount_bench.py first to build the corpus")
    bench.commands_use_this_venv()
    for run in range(args.runs):
        processes = measure(args.label, path)
        total = sum(n for _, n in processes)
        shown = ", ".join(f"{comm} {n:.2f}" for comm, n in processes)
        print(f"({args.label}) run {run + 1}: {total:.2f} G instructions: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
