"""Word count speed: this project's pipeline against a single-process Counter, in one run.

    .venv/bin/python bench/wordcount_bench.py [--mib 160] [--workers 2]

Times, on the same input:
  (a)  collections.Counter over whitespace-split lines, one process (the baseline);
  (b)  the local runner with Python callables + combiner, R=4, through the full shuffle
       (b1: mrjob-style per-record generators; b2: the opt-in batch mapper; b3, b4: the
       same mappers with `reducer: {reduce_by: operator:add}`, Spark's reduceByKey, as the
       combiner and reducer);
  (c)  the same with the streaming mapper.py / reducer.py pair (reducer.py as combiner)
       (c1: one "word<TAB>1" line per word; c2: mapper_combining.py, in-mapper combining).
and, for context, the same user code without this project: its floors (b floor: mapper()
and a dict; c floor: the commands alone on presorted input) and hand-made runs (b0: the
callables in a process pool; c0: shell pipes). Map and reduce tasks run in a process
pool, as the local backend's mapped Airflow tasks run in parallel under LocalExecutor.
Every result is checked against (a); reading an output back for that is not timed.
The pipeline rows' task logs go to <cache>/task-logs.txt.
(a) runs again after every row, and each row's ratio
is to the mean of the (a) runs just before and after it: this machine's speed drifts by
up to 2x within minutes, which a single (a) at the start made look like the rows' own.

Input: text files of Debian's linux-source-6.1 package (/usr/src/linux-source-6.1.tar.xz,
`apt-get install linux-source-6.1`), else a generated Zipf corpus.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "dags"
LINUX_TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")
TEXT_SUFFIXES = (".c", ".h", ".rst", ".txt")
CHUNK_BYTES = 16_000_000


def build_corpus(folder: Path, min_bytes: int) -> str:
    """~16 MB text files in `folder` (cached between runs); returns where the text is from."""
    marker = folder / f".complete-{min_bytes}"
    if marker.exists():
        return marker.read_text()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    source = _from_linux(folder, min_bytes) if LINUX_TARBALL.exists() else None
    if source is None:
        shutil.rmtree(folder)
        folder.mkdir(parents=True)
        source = _zipf(folder, min_bytes)
    marker.write_text(source)
    return source


def _from_linux(folder: Path, min_bytes: int) -> str | None:
    total, index, out = 0, 0, None
    with tarfile.open(LINUX_TARBALL, "r|xz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(TEXT_SUFFIXES):
                continue
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            if out is None or out.tell() >= CHUNK_BYTES:
                if out is not None:
                    out.close()
                out = (folder / f"linux-{index:03d}.txt").open("wb")
                index += 1
            out.write(data)
            total += len(data)
            if total >= min_bytes:
                out.close()
                return f"{LINUX_TARBALL} (text files, {total / 1e6:.0f} MB)"
    if out is not None:
        out.close()
    return None


def _zipf(folder: Path, min_bytes: int) -> str:
    rng = random.Random(1)
    vocabulary = [f"w{i}" for i in range(200_000)]
    weights = list(itertools.accumulate(1 / (r + 1) for r in range(len(vocabulary))))
    total, index = 0, 0
    while total < min_bytes:
        words = rng.choices(vocabulary, cum_weights=weights, k=2_000_000)
        text = "\n".join(" ".join(words[i : i + 12]) for i in range(0, len(words), 12)) + "\n"
        (folder / f"zipf-{index:03d}.txt").write_text(text)
        total += len(text)
        index += 1
    return f"generated Zipf corpus ({total / 1e6:.0f} MB)"


def counter_baseline(folder: Path) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for path in sorted(folder.glob("*.txt")):
        with path.open(encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                counts.update(line.split())
    return counts


def callables_alone(folder: Path, pool: ProcessPoolExecutor) -> collections.Counter[str]:
    """(b0) The same callables without this project, as a hand-made script would run them
    in the same pool: each file's lines through mapper(), pairs grouped in a dict,
    combiner() per key, R=4 by hash; then reducer() per key of each partition."""
    counts: collections.Counter[str] = collections.Counter()
    map_outputs = list(pool.map(_callables_map, sorted(folder.glob("*.txt"))))
    partitions = ([output[r] for output in map_outputs] for r in range(4))
    for reduced in pool.map(_callables_reduce, partitions):
        counts.update(reduced)
    return counts


def _callables_map(path: Path) -> list[list[tuple[str, object]]]:
    from mapreduce_jobs.wordcount_callables import combiner, mapper

    groups: dict[str, list[object]] = {}
    with path.open(encoding="utf-8", errors="surrogateescape", newline="\n") as f:
        for line in f:
            for key, value in mapper(None, line.rstrip("\n")):
                groups.setdefault(key, []).append(value)
    out: list[list[tuple[str, object]]] = [[], [], [], []]
    for key, values in groups.items():  # forked workers share the parent's str hash seed
        out[hash(key) % 4].extend(combiner(key, values))
    return out


def _callables_reduce(outputs: list[list[tuple[str, object]]]) -> dict[str, int]:
    from mapreduce_jobs.wordcount_callables import reducer

    groups: dict[str, list[object]] = {}
    for output in outputs:
        for key, value in output:
            groups.setdefault(key, []).append(value)
    return {k: int(v) for key, values in groups.items() for k, v in reducer(key, values)}  # type: ignore[call-overload]


def mapper_floor(folder: Path, pool: ProcessPoolExecutor) -> collections.Counter[str]:
    """(b floor) Only what no runner of mrjob-style callables can skip: every line through
    mapper() and each pair into a dict of lists (no combiner, sort, shuffle or output),
    with the garbage collector as the worker sets it (collecting at Python's default
    would add work a runner can skip). Twice the Counter's time is all two cores have
    for a 1.0x target."""
    counts: collections.Counter[str] = collections.Counter()
    for groups in pool.map(_mapper_groups, sorted(folder.glob("*.txt"))):
        counts.update(groups)
    return counts


def _mapper_groups(path: Path) -> dict[str, int]:
    from mapreduce_jobs.wordcount_callables import mapper

    from airflow_mapreduce.worker.memory import fewer_collections

    with path.open(encoding="utf-8", errors="surrogateescape", newline="\n") as f:
        lines = f.read().split("\n")
    groups: dict[str, list[object]] = {}
    get = groups.get
    with fewer_collections():
        pairs = itertools.chain.from_iterable(map(mapper, itertools.repeat(None), lines))
        for key, value in pairs:
            held = get(key)
            if held is None:
                groups[key] = [value]
            else:
                held.append(value)
    return dict(zip(groups, map(len, groups.values()), strict=True))  # cheap, for the check


def commands_alone(folder: Path, out: Path, pool: ProcessPoolExecutor) -> None:
    """(c0) The streaming pair with no framework, as a hand-made script would run them:
    `mapper.py < file | reducer.py` per file in the same pool, then one reducer.py over
    all of their outputs (reducer.py sums in a dict, so nothing needs sorting)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    files = sorted(folder.glob("*.txt"))
    combined = [out / f"combined-{i:03d}" for i in range(len(files))]
    pipes = [(f"{MAPPER} < {f} | {REDUCER}", c) for f, c in zip(files, combined, strict=True)]
    list(pool.map(_pipe, pipes))
    _pipe((f"cat {out}/combined-* | {REDUCER}", out / "part-00000"))
    for path in combined:
        path.unlink()


def commands_floor(folder: Path, out: Path, workers: int) -> Timing:
    """(c floor) Only the commands' own work, as (c1) runs them: mapper.py on each file,
    reducer.py (the combiner) on its output sorted, then reducer.py on the sorted combined
    outputs, R=4. The sorts between them are not timed: (wall, CPU, counts) of the
    commands alone, which no runner of this pair can undercut."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    files = sorted(folder.glob("*.txt"))
    mapped = [out / f"map-{i:03d}" for i in range(len(files))]
    combined = [out / f"combined-{i:03d}" for i in range(len(files))]
    sort = "LC_ALL=C sort -t '\t' -k1,1 -S 256M"
    with ProcessPoolExecutor(workers, initializer=_init_worker) as pool:
        maps = [(f"{MAPPER} < {f}", m) for f, m in zip(files, mapped, strict=True)]
        combines = [(f"{REDUCER} < {m}.sorted", c) for m, c in zip(mapped, combined, strict=True)]
        sorts = [(f"{sort} {m}", Path(f"{m}.sorted")) for m in mapped]
        reduces = [(f"{REDUCER} < {out}/r{r}", out / f"part-{r:05d}") for r in range(4)]
        wall = cpu = 0.0
        for phase in (maps, sorts, combines, None, reduces):
            if phase is None:  # R=4 by crc32 of the word, each partition sorted (not timed)
                _partition_sorted(combined, out, 4)
                continue
            start = time.perf_counter()
            used = sum(pool.map(_pipe, phase))
            if phase is not sorts:
                wall, cpu = wall + time.perf_counter() - start, cpu + used
    for path in [*mapped, *combined, *(Path(f"{m}.sorted") for m in mapped)]:
        path.unlink()
    return wall, cpu, read_counts(out)


def _partition_sorted(inputs: list[Path], out: Path, partitions: int) -> None:
    lines: list[list[bytes]] = [[] for _ in range(partitions)]
    for path in inputs:
        for line in path.read_bytes().splitlines(keepends=True):
            lines[zlib.crc32(line.partition(b"\t")[0]) % partitions].append(line)
    for r, part in enumerate(lines):
        (out / f"r{r}").write_bytes(b"".join(sorted(part)))


MAPPER = "python3 mapreduce_jobs/wordcount/mapper.py"
REDUCER = "python3 mapreduce_jobs/wordcount/reducer.py"


def _pipe(command_and_output: tuple[str, Path]) -> float:
    """Run a shell command with stdout to a file; return its CPU seconds (its children's)."""
    from airflow_mapreduce.worker.streaming import command_env

    command, output = command_and_output
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with output.open("wb") as f:  # the framework's command environment, run from dags/
        subprocess.run(command, shell=True, stdout=f, check=True, cwd=DAGS, env=command_env(None))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def commands_use_this_venv() -> None:
    """Commands find `python3` where the README's scripts put it (scripts/bootstrap.sh):
    the venv's bin first on PATH. Else a pyenv shim (a bash script) runs at every start."""
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])


def _init_worker(task_log: Path | None = None) -> None:
    os.chdir(DAGS)  # relative commands and modules resolve in dags/, as for the local backend
    sys.path.insert(0, str(DAGS))
    if task_log is not None:  # the tasks' log lines, out of the table (a failure still shows)
        with task_log.open("ab") as log:
            os.dup2(log.fileno(), sys.stderr.fileno())


def _run_task(uri: str) -> None:
    from airflow_mapreduce.worker.run import run_task

    run_task(uri)


def run_pipeline(job_yaml: str, input_dir: Path, output: Path, pool: ProcessPoolExecutor) -> None:
    from airflow_mapreduce.job import parse_job_text
    from airflow_mapreduce.plan.commit import commit_run
    from airflow_mapreduce.plan.planner import RunTarget, plan_run
    from airflow_mapreduce.plan.shuffle import shuffle_run
    from airflow_mapreduce.storage import FileSystems

    job = parse_job_text(job_yaml)
    files = FileSystems()
    target = RunTarget(
        job.dag_id, "bench", (f"file://{input_dir}",), f"file://{output}", None, job.reducers, 64
    )
    plan_uri, map_specs, _ = plan_run(files, job, target)
    list(pool.map(_run_task, map_specs))
    list(pool.map(_run_task, shuffle_run(files, plan_uri, job.reducers)))
    commit_run(files, plan_uri)


def read_counts(output: Path) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for part in sorted(output.glob("part-*")):
        with part.open(encoding="utf-8", errors="surrogateescape", newline="\n") as f:
            for line in f:
                word, _, count = line.rstrip("\n").rpartition("\t")
                counts[word] += int(count)
    return counts


JOB_HEAD = "dag_id: bench\ninput: {uri: unused, split_size: 16MiB}\noutput: unused\nreducers: 4\n"
JOBS = {
    "b1 callables + combiner": JOB_HEAD
    + "mapper: {callable: mapreduce_jobs.wordcount_callables:mapper}\n"
    "combiner: {callable: mapreduce_jobs.wordcount_callables:combiner}\n"
    "reducer: {callable: mapreduce_jobs.wordcount_callables:reducer}\n",
    "b2 batch callable + combiner": JOB_HEAD
    + "mapper: {callable: mapreduce_jobs.wordcount_callables:mapper_batch}\n"
    "combiner: {callable: mapreduce_jobs.wordcount_callables:combiner}\n"
    "reducer: {callable: mapreduce_jobs.wordcount_callables:reducer}\n",
    "b3 batch callable + reduce_by add": JOB_HEAD
    + "mapper: {callable: mapreduce_jobs.wordcount_callables:mapper_batch}\n"
    "reducer: {reduce_by: 'operator:add'}\n",
    "b4 callables + reduce_by add": JOB_HEAD
    + "mapper: {callable: mapreduce_jobs.wordcount_callables:mapper}\n"
    "reducer: {reduce_by: 'operator:add'}\n",
    "c1 streaming mapper.py/reducer.py": JOB_HEAD
    + "mapper: {command: [python3, mapreduce_jobs/wordcount/mapper.py]}\n"
    "combiner: {command: [python3, mapreduce_jobs/wordcount/reducer.py]}\n"
    "reducer: {command: [python3, mapreduce_jobs/wordcount/reducer.py]}\n",
    "c2 same, in-mapper combining": JOB_HEAD
    + "mapper: {command: [python3, mapreduce_jobs/wordcount/mapper_combining.py]}\n"
    "combiner: {command: [python3, mapreduce_jobs/wordcount/reducer.py]}\n"
    "reducer: {command: [python3, mapreduce_jobs/wordcount/reducer.py]}\n",
}


def cpu_seconds() -> float:
    """CPU time of this process and of its waited-for children (pool workers, commands)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


Timing = tuple[float, float, object]  # wall seconds, CPU seconds, the counts


def timed(function: Callable[[], object]) -> Timing:
    """(wall seconds, CPU seconds, result). CPU time is less sensitive to other load."""
    start, start_cpu = time.perf_counter(), cpu_seconds()
    result = function()
    return time.perf_counter() - start, cpu_seconds() - start_cpu, result


def compared(
    runs: list[tuple[float, float]], bases: list[tuple[float, float]]
) -> tuple[tuple[float, float], float, float]:
    """(row's (wall, CPU), (a)'s wall, (a)'s CPU) to compare: one run against the mean of
    the (a) runs around it; several, best against best (the run least slowed by others)."""
    walls, cpus = [wall for wall, _ in bases], [cpu for _, cpu in bases]
    if len(runs) == 1:
        return runs[0], statistics.mean(walls), statistics.mean(cpus)
    return min(runs), min(walls), min(cpus)


def build_rows(args: argparse.Namespace, corpus: Path) -> dict[str, Callable[[], Timing]]:
    """Every row but (a): label -> a function that runs it once."""
    rows: dict[str, Callable[[], Timing]] = {}
    c0_output = args.cache / "out" / "c0"
    floors: dict[str, Callable[[ProcessPoolExecutor], collections.Counter[str] | None]] = {
        "b floor: mapper() + a dict, no more": lambda pool: mapper_floor(corpus, pool),
        "b0 hand-made: callables, pool": lambda pool: callables_alone(corpus, pool),
        "c0 hand-made: shell pipes": lambda pool: commands_alone(corpus, c0_output, pool),
    }
    for label, floor in floors.items():

        def run_floor(floor: Callable[[ProcessPoolExecutor], object] = floor) -> object:
            with ProcessPoolExecutor(args.workers, initializer=_init_worker) as pool:
                return floor(pool)

        def timed_floor(run_floor: Callable[[], object] = run_floor) -> Timing:
            seconds, cpu, counts = timed(run_floor)
            return seconds, cpu, read_counts(c0_output) if counts is None else counts

        rows[label] = timed_floor
    rows["c floor: the commands, no more"] = lambda: commands_floor(
        corpus, args.cache / "out" / "cfloor", args.workers
    )
    memory = f"memory: {{sort_buffer: {args.sort_buffer}}}\n" if args.sort_buffer else ""
    for label, job_text in JOBS.items():
        output = args.cache / "out" / label.split()[0]

        def run_job(job_yaml: str = job_text + memory, output: Path = output) -> None:
            # A pool per job: its workers are reaped at the end, so their CPU time counts.
            log = (args.cache / "task-logs.txt",)
            with ProcessPoolExecutor(args.workers, initializer=_init_worker, initargs=log) as pool:
                run_pipeline(job_yaml, corpus, output, pool)

        def timed_job(run_job: Callable[[], None] = run_job, output: Path = output) -> Timing:
            seconds, cpu, _ = timed(run_job)
            return seconds, cpu, read_counts(output)  # reading the output back: not timed

        rows[label] = timed_job

    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=160, help="input size (MB, default 160)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/airflow-mapreduce-bench"))
    parser.add_argument(
        "--only", action="append", help="run only the rows whose label contains this (repeatable)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each row, each followed by (a); best of them"
    )
    parser.add_argument(
        "--sort-buffer", help="memory.sort_buffer of the jobs (e.g. 8MiB; default: the job default)"
    )
    args = parser.parse_args()
    commands_use_this_venv()

    corpus = args.cache / "corpus"
    source = build_corpus(corpus, args.mib * 1_000_000)
    size = sum(p.stat().st_size for p in corpus.glob("*.txt"))
    print(f"input: {source}; {size / 1e6:.0f} MB; {args.workers} worker processes")

    reference = collections.Counter[str]()
    baselines: list[tuple[float, float]] = []

    def run_baseline() -> tuple[float, float]:
        """(a), timed again around every row: this machine's speed drifts within a run."""
        seconds, cpu, counts = timed(lambda: counter_baseline(corpus))
        assert isinstance(counts, collections.Counter)
        if not reference:
            reference.update(counts)
        baselines.append((seconds, cpu))
        return seconds, cpu

    rows = build_rows(args, corpus)
    around = "(a) around it" if args.repeat == 1 else f"(a) around it; best of {args.repeat}"
    print(f"{'':36} {'wall':>8} {'ratio':>6} {'cpu':>8} {'ratio':>6}  {around}")
    before = run_baseline()
    failed = False
    for label, row in rows.items():
        if args.only and not any(part in label for part in args.only):
            continue
        runs, bases, same = [], [before], True
        for _ in range(args.repeat):
            seconds, cpu, counts = row()
            runs.append((seconds, cpu))
            bases.append(run_baseline())
            same &= counts == reference
        failed |= not same
        (seconds, cpu), base_wall, base_cpu = compared(runs, bases)
        print(
            f"({label:<33}) {seconds:7.1f}s {seconds / base_wall:5.2f}x "
            f"{cpu:7.1f}s {cpu / base_cpu:5.2f}x  "
            f"{', '.join(f'{wall:.1f}s' for wall, _ in bases)}"
            f"{'' if same else '  WRONG RESULT'}"
        )
        before = bases[-1]
    walls = sorted(seconds for seconds, _ in baselines)
    print(f"(a)  Counter, one process: {len(walls)} runs, {walls[0]:.1f}-{walls[-1]:.1f}s wall")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
