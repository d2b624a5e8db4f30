"""Many small files: the streaming word count over N tiny files against the same bytes in one.

    .venv/bin/python bench/small_files_bench.py [--files 20000] [--workers 2] [--repeat 1]

Writes N files of ~20 bytes (a few words each) and one file holding the same bytes, then
runs (c1) of wordcount_bench.py (`mapper.py`, `reducer.py` as combiner and reducer, R=4,
16 MiB splits: the plan groups the small files into one map task) through plan, map,
shuffle, reduce and commit on each, and gives the N files' ratio to the one file, in the
same run (target: at most 2x). `--per-split-env` adds a row with `streaming.per_split_env:
true`: a mapper process per file, as every streaming job ran before a map task started
its mapper once (slow: ~20-30 ms a file; try it with --files 2000). Every output is
checked against a collections.Counter of the files read back; reading the output back is
not timed. Last, the floor: listing the N files and reading each in one Python process,
beside the pipeline's extra time for them (per file). Task logs go to <cache>/task-logs.txt.
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import random
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import wordcount_bench as bench

JOB = bench.JOBS["c1 streaming mapper.py/reducer.py"]
WORDS = [f"w{i}" for i in range(500)] + ["naïve", "Straße", "日本"]


def write_inputs(folder: Path, files: int) -> tuple[Path, Path, collections.Counter[str]]:
    """(folder of `files` small files, folder of one file with the same bytes, the Counter
    of their words, read back from the files)."""
    shutil.rmtree(folder, ignore_errors=True)
    small, single = folder / "small", folder / "single"
    small.mkdir(parents=True)
    single.mkdir()
    rng = random.Random(5)
    texts = []
    for index in range(files):
        text = " ".join(rng.choices(WORDS, k=4)) + "\n"
        (small / f"f-{index:06d}.txt").write_text(text, encoding="utf-8")
        texts.append(text)
    (single / "all.txt").write_text("".join(texts), encoding="utf-8")
    counts: collections.Counter[str] = collections.Counter()
    for path in sorted(small.iterdir()):
        counts.update(path.read_text(encoding="utf-8").split())
    return small, single, counts


def run(job_text: str, input_dir: Path, output: Path, args: argparse.Namespace, log: Path) -> None:
    """The whole pipeline, tasks in a fresh pool (reaped at the end: its CPU time counts)."""
    with ProcessPoolExecutor(args.workers, initializer=bench._init_worker, initargs=(log,)) as pool:
        bench.run_pipeline(job_text, input_dir, output, pool)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=20_000, help="small files (default 20000)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each row; best of them")
    parser.add_argument("--per-split-env", action="store_true", help="also time that setting")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/airflow-mapreduce-small-files"))
    args = parser.parse_args()
    bench.commands_use_this_venv()

    small, single, reference = write_inputs(args.cache / "input", args.files)
    size = sum(p.stat().st_size for p in small.iterdir())
    print(f"input: {args.files} files, {size / 1e3:.0f} kB; {args.workers} worker processes")
    rows = {"one file, same bytes": (single, JOB), f"{args.files} files": (small, JOB)}
    if args.per_split_env:
        rows[f"{args.files} files, per_split_env"] = (
            small,
            JOB + "streaming: {per_split_env: true}\n",
        )

    log = args.cache / "task-logs.txt"
    run(JOB, single, args.cache / "out" / "warm-up", args, log)  # imports, caches: not timed
    results: dict[str, tuple[float, float]] = {}
    failed = False
    print(f"{'':34} {'wall':>8} {'ratio':>6} {'cpu':>8} {'ratio':>6}")
    for label, (input_dir, job_text) in rows.items():
        output = args.cache / "out" / label.replace(" ", "-").replace(",", "")
        runs, same = [], True
        for _ in range(args.repeat):
            seconds, cpu, _ = bench.timed(
                functools.partial(run, job_text, input_dir, output, args, log)
            )
            runs.append((seconds, cpu))
            same &= bench.read_counts(output) == reference  # reading it back: not timed
        failed |= not same
        seconds, cpu = results[label] = min(runs)
        base_wall, base_cpu = results["one file, same bytes"]
        print(
            f"({label:<32}) {seconds:7.2f}s {seconds / base_wall:5.2f}x "
            f"{cpu:7.2f}s {cpu / base_cpu:5.2f}x{'' if same else '  WRONG RESULT'}"
        )
    floor = _floor(small, args.repeat)
    extra = results[f"{args.files} files"][0] - results["one file, same bytes"][0]
    print(
        f"floor: listing the {args.files} files (os.scandir) and reading each (open/read) in "
        f"one Python process: {floor:.2f}s; the pipeline's extra time for them: {extra:.2f}s, "
        f"{extra / args.files * 1e6:.0f} us a file"
    )
    return 1 if failed else 0


def _floor(folder: Path, repeat: int) -> float:
    """What any reader of N small files pays at least: the listing and an open/read each."""

    def read_all() -> int:
        total = 0
        for entry in os.scandir(folder):
            with open(entry.path, "rb") as f:
                total += len(f.read())
        return total

    return min(bench.timed(read_all)[0] for _ in range(max(1, repeat)))


if __name__ == "__main__":
    sys.exit(main())
