"""partitioner.kind total_order end to end: the plan samples the mapper's keys, the parts
come out globally sorted by the job's comparator with exactly the input's records.

Every check of order and content here is plain Python over the files (keys parsed with
float() and bytes comparisons), independent of worker.keys.
"""

from __future__ import annotations

import collections
import gzip
import importlib.util
import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from airflow_mapreduce.errors import JobSpecError, PlanError
from airflow_mapreduce.job import parse_job_text
from airflow_mapreduce.plan import sampling
from airflow_mapreduce.plan.planner import RunTarget, plan_run
from airflow_mapreduce.plan.sampling import SampleWorker, sample_pieces
from airflow_mapreduce.plan.splits import plan_splits
from airflow_mapreduce.plan.tasks import InputSplit, JobRuntime, MapTaskSpec
from airflow_mapreduce.storage import FileSystems
from tests.processes import marked_processes, wait_until

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
TERASORT = DAGS / "mapreduce_jobs" / "terasort"
CLI = Path(sys.executable).parent / "airflow-mapreduce"


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"terasort_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


teragen = load_module(TERASORT / "teragen.py")
terasort_validate = load_module(TERASORT / "validate.py")

# A reference order per comparator: the comparator's fields only (ties may come in any order).
Order = Callable[[bytes], Any]


def first_field(line: bytes) -> bytes:
    return line.split(b"\t", 1)[0]


ORDERS: dict[str, tuple[str, Order]] = {
    "bytes": ("", first_field),
    "numeric": (
        "comparator: {keys: [{field: 1, numeric: true}]}",
        lambda line: float(first_field(line)),
    ),
    "numeric_reverse": (
        "comparator: {keys: [{field: 1, numeric: true, reverse: true}]}",
        lambda line: -float(first_field(line)),
    ),
}


def is_sorted(lines: list[bytes], order: Order) -> bool:
    return all(order(a) <= order(b) for a, b in itertools.pairwise(lines))


def numeric_records(count: int, seed: int, skew: float = 0.0) -> list[bytes]:
    """Lines `number<TAB>value`: ints, decimals and negatives; `skew` of them one number."""
    rows = teragen.records(count, seed=seed, skew=skew)
    out = []
    for index, row in enumerate(rows):
        key = row[:10]
        if key == rows[0][:10] and skew:  # (teragen's hot keys: keep them hot)
            number = "42"
        else:
            value = int.from_bytes(key[:4], "big") % 200_000 - 100_000
            number = f"{value / 100:.2f}" if index % 3 else str(value)
        out.append(f"{number}\t{row[11:].decode().rstrip()}".encode())
    return out


def write_input(folder: Path, lines: list[bytes], files: int = 3) -> None:
    """The lines over `files` files; the last one gzip-compressed (one whole split)."""
    folder.mkdir(parents=True)
    size = -(-len(lines) // files)
    for index in range(files):
        chunk = b"".join(line + b"\n" for line in lines[index * size : (index + 1) * size])
        if index == files - 1:
            (folder / f"part-{index}.txt.gz").write_bytes(gzip.compress(chunk))
        else:
            (folder / f"part-{index}.txt").write_bytes(chunk)


def read_input(folder: Path) -> list[bytes]:
    lines: list[bytes] = []
    for path in sorted(folder.iterdir()):
        data = path.read_bytes()
        lines += (gzip.decompress(data) if path.suffix == ".gz" else data).splitlines()
    return lines


def output_parts(read: Callable[[str], bytes], names: list[str]) -> list[list[bytes]]:
    parts = sorted(name for name in names if name.rsplit("/", 1)[-1].startswith("part-"))
    return [read(name).splitlines() for name in parts]


def check_total_order(parts: list[list[bytes]], expected: list[bytes], order: Order) -> None:
    """Concatenated parts sorted by `order`, their records the input's (as a multiset), and
    the work really shared by the reducers."""
    assert collections.Counter(itertools.chain(*parts)) == collections.Counter(expected)
    assert is_sorted(list(itertools.chain(*parts)), order)
    assert sum(1 for part in parts if part) >= 2, [len(part) for part in parts]


def job_yaml(dag_id: str, extra: str, reducers: int = 5, split_size: str = "16KiB") -> str:
    return (
        f"dag_id: {dag_id}\ninput: {{uri: in, split_size: {split_size}}}\noutput: out\n"
        f"reducers: {reducers}\nmapper: {{command: [cat]}}\nreducer: {{command: [cat]}}\n"
        f"partitioner: {{kind: total_order, samples: 2000}}\n{extra}\n"
    )


# -- the settings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "partitioner: {samples: 500}",
            "7:15: partitioner.samples: samples sets the sampling of kind: total_order",
        ),
        (
            "partitioner: {kind: total_order, key_fields: 1}",
            "7:34: partitioner.key_fields: kind: total_order ranges whole keys",
        ),
        ("partitioner: {kind: total, samples: 5}", "did you mean 'total_order'?"),
        ("partitioner: {kind: total_order, samples: 0}", "expected a number >= 1, found 0"),
        ("partitioner: {kind: total_order, sample_seconds: 7200}", "expected a number <= 3600"),
        (
            "reducers: 0\npartitioner: {kind: total_order}",
            "partitioner.kind: kind: total_order orders the reducers' output, but the job is "
            "map-only",
        ),
    ],
)
def test_total_order_settings_mistakes_are_explained(body: str, message: str) -> None:
    text = "dag_id: j\ninput: {uri: x}\noutput: y\nmapper: {command: [cat]}\n"
    text += "reducer: {command: [cat]}\nreducers: 2\n" if "reducers: 0" not in body else "\n\n"
    with pytest.raises(JobSpecError, match=re.escape(message)):
        parse_job_text(text + body + "\n")


def test_the_settings_reach_the_worker_with_their_defaults() -> None:
    job = parse_job_text(job_yaml("defaults", "").replace(", samples: 2000", ""))
    partitioner = JobRuntime.from_job(job, 4).dataplane.partitioner
    assert (partitioner.kind, partitioner.samples, partitioner.sample_seconds) == (
        "total_order", 10_000, 60,
    )  # fmt: skip


# -- where the sample is read ---------------------------------------------------------------


def test_pieces_are_disjoint_evenly_spread_windows_of_the_whole_input(tmp_path: Path) -> None:
    lines = [b"%08d\t%s" % (n, b"x" * (n % 50)) for n in range(30_000)]
    write_input(tmp_path / "in", lines)
    files = FileSystems()
    splits = plan_splits(files, f"file://{tmp_path}/in", 64 << 10)
    sizes = {split.uri: files.size(split.uri) for split in splits}
    pieces = sample_pieces(splits, sizes, 5000)
    assert sum(piece.records for piece in pieces) >= 5000
    windows = [p.split for p in pieces if p.split.length is not None]
    assert len(windows) > 30
    for split in windows:
        assert split.length is not None and 0 < split.length <= sampling.PIECE_BYTES
        assert split.offset + split.length <= sizes[split.uri]
    for a, b in itertools.pairwise(windows):
        assert a.uri != b.uri or a.offset + (a.length or 0) <= b.offset  # disjoint, in order
    # Every file is sampled, the compressed one whole, from its start.
    assert {p.split.uri for p in pieces} == set(sizes)
    [whole] = [p for p in pieces if p.split.length is None]
    assert whole.split.uri.endswith(".gz") and whole.split.offset == 0


def test_an_input_smaller_than_the_sample_is_read_once_whole(tmp_path: Path) -> None:
    (tmp_path / "tiny.txt").write_bytes(b"b\na\nc\n")
    splits = [InputSplit(uri=f"file://{tmp_path}/tiny.txt", offset=0, length=6)]
    pieces = sample_pieces(splits, {splits[0].uri: 6}, 10_000)
    assert [(p.split.offset, p.split.length) for p in pieces] == [(o, 1) for o in range(6)]


# -- the plan ------------------------------------------------------------------------------


def plan(tmp_path: Path, extra: str, reducers: int, **kwargs: Any) -> list[MapTaskSpec]:
    job = parse_job_text(job_yaml("plan_total_order", extra, reducers=reducers))
    target = RunTarget(
        "plan_total_order", "r1", (f"file://{tmp_path}/in",), f"file://{tmp_path}/out", None,
        reducers, 8,
    )  # fmt: skip
    files = FileSystems()
    _, spec_uris, planned = plan_run(files, job, target, **kwargs)
    specs = [MapTaskSpec.model_validate_json(files.read_bytes(uri)) for uri in spec_uris]
    assert all(spec.job == planned.job for spec in specs)
    return specs


def test_the_plan_puts_sampled_split_points_in_every_task_spec(tmp_path: Path) -> None:
    write_input(tmp_path / "in", numeric_records(3000, seed=1))
    specs = plan(tmp_path, ORDERS["numeric_reverse"][0], reducers=4)
    points = specs[0].job.split_points
    assert points is not None and len(points) == 3
    values = [float(point) for point in points]
    assert values == sorted(values, reverse=True)
    # One reducer: nothing to sample, everything is partition 0 and sorted.
    assert plan(tmp_path, "", reducers=1)[0].job.split_points is None


def test_a_failing_sampler_fails_the_plan_with_what_the_mapper_said(tmp_path: Path) -> None:
    write_input(tmp_path / "in", numeric_records(300, seed=2))
    failing = "mapper: {command: [python3, -c, 'import sys; sys.exit(\"boom in the mapper\")']}"
    body = job_yaml("sampler_fails", "", reducers=2).replace("mapper: {command: [cat]}", failing)
    job = parse_job_text(body)
    target = RunTarget(
        "sampler_fails", "r", (f"file://{tmp_path}/in",), f"file://{tmp_path}/o", None, 2, 4
    )
    with pytest.raises(PlanError, match=r"(?s)failed with exit code 1.*boom in the mapper"):
        plan_run(FileSystems(), job, target, run_sample=SampleWorker(str(tmp_path)))


def test_a_hanging_mapper_is_killed_past_the_time_bound(
    tmp_path: Path, marker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sampling, "GRACE_SECONDS", 1)
    write_input(tmp_path / "in", numeric_records(300, seed=3))
    hanging = f"mapper: {{command: [python3, -c, 'import time; time.sleep(600)', {marker}]}}"
    body = job_yaml("sampler_hangs", "", reducers=2).replace("mapper: {command: [cat]}", hanging)
    job = parse_job_text(body.replace("samples: 2000", "samples: 2000, sample_seconds: 1"))
    target = RunTarget(
        "sampler_hangs", "r", (f"file://{tmp_path}/in",), f"file://{tmp_path}/o", None, 2, 4
    )
    started = time.monotonic()
    with pytest.raises(PlanError, match=r"ran longer than partitioner\.sample_seconds"):
        plan_run(FileSystems(), job, target, run_sample=SampleWorker(str(tmp_path)))
    assert time.monotonic() - started < 20
    assert wait_until(lambda: not marked_processes(marker)), marked_processes(marker)


# -- end to end: in this process, the CLI and Airflow, on local files and S3 ----------------


def identity_mapper(_key: Any, line: str) -> Iterator[tuple[str, str]]:
    key, _, value = line.partition("\t")
    yield key, value


def identity_reducer(key: str, values: Iterator[str]) -> Iterator[tuple[str, str]]:
    for value in values:
        yield key, value


@pytest.mark.parametrize(
    ("case", "extra", "order"),
    [
        ("bytes", "", ORDERS["bytes"][1]),
        ("numeric", ORDERS["numeric"][0], ORDERS["numeric"][1]),
        ("numeric_reverse", ORDERS["numeric_reverse"][0], ORDERS["numeric_reverse"][1]),
        ("skewed_numeric", ORDERS["numeric"][0], ORDERS["numeric"][1]),
        (
            "text_reverse_two_fields",  # by field 2 descending, then field 1 ascending
            "streaming: {key_fields: 2}\n"
            "comparator: {keys: [{field: 2, reverse: true}, {field: 1}]}",
            lambda line: ((*(-b for b in line.split(b"\t")[1]), 1), first_field(line)),
        ),
        (
            "python_callables",  # JSON keys: ordered by their encoding, here plain strings
            "mapper: {callable: 'tests.plan.test_total_order:identity_mapper'}\n"
            "reducer: {callable: 'tests.plan.test_total_order:identity_reducer'}",
            first_field,
        ),
    ],
)
def test_parts_concatenated_are_sorted_with_every_record_once(  # type: ignore[no-untyped-def]
    run_job, tmp_path: Path, case: str, extra: str, order: Order
) -> None:
    if case == "bytes":  # TeraSort's records, keys with spaces and punctuation
        lines = [line.rstrip(b"\n") for line in teragen.records(6000, seed=4)]
    elif case == "text_reverse_two_fields":
        rows = teragen.records(6000, seed=5, skew=0.3)
        lines = [row[:3] + b"\t" + row[3:6] + b"\t" + row[11:].rstrip(b"\n") for row in rows]
    elif case == "python_callables":
        lines = [line.rstrip(b"\n").replace(b"\\", b"/").replace(b'"', b"'")
                 for line in teragen.records(6000, seed=6)]  # fmt: skip
    else:
        lines = numeric_records(6000, seed=7, skew=0.6 if case.startswith("skewed") else 0.0)
    write_input(tmp_path / "in", lines)
    body = job_yaml(f"total_{case}", extra)
    if case == "python_callables":
        body = body.replace("mapper: {command: [cat]}\nreducer: {command: [cat]}\n", "")
    manifest = run_job(parse_job_text(body), f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    assert manifest.records == len(lines)
    out = tmp_path / "out"
    parts = output_parts(lambda name: (out / name).read_bytes(), os.listdir(out))
    assert len(parts) == 5
    check_total_order(parts, lines, order)
    if case.startswith("skewed"):  # the hot key (60% of the records) is in one part only
        holding = [i for i, part in enumerate(parts) if any(first_field(x) == b"42" for x in part)]
        assert len(holding) == 1
        assert len([part for part in parts if part]) >= 3  # the others still spread


@pytest.mark.slow
def test_cli_run_sorts_terasort_records_and_teravalidate_agrees(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    for index in range(3):  # teragen.py as a user runs it, a skewed part included
        skew = ["--skew", "0.5"] if index == 1 else []
        subprocess.run(
            [sys.executable, str(TERASORT / "teragen.py"), "4000", str(tmp_path / f"in/{index}"),
             "--seed", str(index), "--first-row", str(index * 4000), *skew],
            check=True,
        )  # fmt: skip
    (tmp_path / "job.yaml").write_text(job_yaml("cli_terasort", "", 6, split_size="256KiB"))
    result = subprocess.run(
        [str(CLI), "run", "job.yaml", "--progress", "none"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "total order: mapper ran on 2000 sampled records" in result.stderr
    assert "Total order: 5 split point(s)" in result.stdout
    out = tmp_path / "out"
    parts = output_parts(lambda name: (out / name).read_bytes(), os.listdir(out))
    check_total_order(parts, read_input(tmp_path / "in"), first_field)
    assert terasort_validate.validate(str(out)) == []
    validated = subprocess.run(
        [sys.executable, str(TERASORT / "validate.py"), str(out), str(tmp_path / "in")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert validated.returncode == 0 and "valid:" in validated.stdout, validated.stderr
    # TeraValidate notices a lost record and a part out of order.
    (out / "part-00002").write_bytes(b"".join(x + b"\n" for x in parts[2][1:]))
    (out / "part-00003").write_bytes(b"".join(x + b"\n" for x in parts[4]))
    problems = terasort_validate.validate(str(out))
    assert any("first key" in p for p in problems) and any("lost" in p for p in problems)


def s3_env(s3_server: Any) -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_ENDPOINT_URL_S3": s3_server.endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
    }


@pytest.mark.integration
@pytest.mark.slow
def test_cli_run_on_s3_with_a_numeric_descending_comparator(tmp_path: Path, s3_server: Any) -> None:
    s3 = s3_server.filesystem()
    s3.mkdir("total-order-cli")
    lines = numeric_records(8000, seed=8, skew=0.2)
    write_input(tmp_path / "in", lines)
    s3.put(f"{tmp_path}/in/", "total-order-cli/in/", recursive=True)
    extra, order = ORDERS["numeric_reverse"]
    (tmp_path / "job.yaml").write_text(job_yaml("cli_s3_total_order", extra, 4, "128KiB"))
    result = subprocess.run(
        [str(CLI), "run", "job.yaml", "--progress", "none",
         "--input", "s3://total-order-cli/in/", "--output", "s3://total-order-cli/out/"],
        cwd=tmp_path, env=s3_env(s3_server), capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Total order: 3 split point(s)" in result.stdout
    s3.invalidate_cache()
    parts = output_parts(s3.cat, s3.find("total-order-cli/out"))
    assert len(parts) == 4
    check_total_order(parts, lines, order)


@pytest.mark.integration
@pytest.mark.slow
def test_the_terasort_example_dag_is_globally_sorted(  # type: ignore[no-untyped-def]
    airflow_db: str, tmp_path: Path, capfd
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(str(DAGS)).get_dag("terasort")
    out = tmp_path / "out"
    run = dag.test(run_conf={"output": f"file://{out}"})
    assert run.state == "success"
    assert terasort_validate.validate(str(out)) == []
    parts = output_parts(lambda name: (out / name).read_bytes(), os.listdir(out))
    assert len(parts) == 4 and all(parts)
    check_total_order(parts, read_input(DAGS / "data" / "terasort"), first_field)
    assert json.loads((out / "_manifest.json").read_text())["records"] == 1800
    logged = capfd.readouterr()  # the plan task ran the sampler in the job's folder
    assert "total order: mapper ran on 1000 sampled records" in logged.out + logged.err


@pytest.mark.integration
@pytest.mark.slow
def test_a_total_order_dag_on_s3_with_a_numeric_comparator(  # type: ignore[no-untyped-def]
    airflow_db, test_dags: Path, tmp_path: Path, s3_server, monkeypatch
) -> None:
    from tests.dags_folder import yaml_dag

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.airflow_conn_json())
    s3 = s3_server.filesystem()
    s3.mkdir("total-order-dag")
    lines = numeric_records(8000, seed=9, skew=0.5)
    write_input(tmp_path / "in", lines)
    s3.put(f"{tmp_path}/in/", "total-order-dag/in/", recursive=True)
    extra, order = ORDERS["numeric"]
    job = yaml.safe_load(job_yaml("total_order_s3", extra, reducers=4))
    job.update(input={"uri": "s3://total-order-dag/in/", "split_size": "128KiB"})
    job.update(output="s3://total-order-dag/out/")
    dag = yaml_dag(test_dags, "total_order_s3", yaml.safe_dump(job))
    run = dag.test()
    assert run.state == "success"
    s3.invalidate_cache()
    parts = output_parts(s3.cat, s3.find("total-order-dag/out"))
    assert len(parts) == 4
    check_total_order(parts, lines, order)
