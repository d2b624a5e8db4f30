"""The streaming contract and data-plane settings, end to end through plan/map/shuffle/reduce.

Reference results are computed here with sorted()/Counter, independently of the worker.
"""

from __future__ import annotations

import bz2
import collections
import gzip
import json
import random
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
import zstandard

from airflow_mapreduce.errors import RecordError, TaskFailedError
from airflow_mapreduce.job import parse_job_text
from airflow_mapreduce.plan.tasks import TaskManifest
from airflow_mapreduce.worker.steps import _SkipMode
from tests.wordcount import output_counts, read_parts

DAGS = Path(__file__).resolve().parents[2] / "dags"

PY = sys.executable


def job(body: str, reducers: int = 3) -> str:
    return "dag_id: dp\ninput: {uri: unused, split_size: 64KiB}\noutput: unused\n" + (
        f"reducers: {reducers}\n" + textwrap.dedent(body)
    )


def write_events(folder: Path, lines: int = 6000) -> list[tuple[str, int, str]]:
    """user<TAB>timestamp<TAB>event lines over several files, some with CRLF."""
    rng = random.Random(3)
    events = [(f"u{rng.randrange(40)}", rng.randrange(10**6), f"e{i}") for i in range(lines)]
    folder.mkdir()
    for index in range(3):
        eol = "\r\n" if index == 1 else "\n"
        chunk = events[index::3]
        (folder / f"ev-{index}.txt").write_text(
            "".join(f"{u}\t{t:07d}\t{e}{eol}" for u, t, e in chunk), newline=""
        )
    return events


def test_secondary_sort_partitions_on_the_first_key_field(run_job, tmp_path) -> None:  # type: ignore[no-untyped-def]
    events = write_events(tmp_path / "in")
    spec = parse_job_text(
        job("""
            mapper: {command: [cat]}
            reducer: {command: [cat]}
            streaming: {key_fields: 2}
            partitioner: {key_fields: 1}
            memory: {sort_buffer: 64KiB}
        """)
    )
    run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    users_seen: dict[str, str] = {}
    total = 0
    for name, data in read_parts(tmp_path / "out").items():
        rows = [line.split("\t") for line in data.decode().splitlines()]
        keys = [(u, t) for u, t, _ in rows]
        assert keys == sorted(keys), f"{name} is not sorted by (user, timestamp)"
        for user, _, _ in rows:
            assert users_seen.setdefault(user, name) == name, f"{user} split over partitions"
        total += len(rows)
    assert total == len(events)
    assert len(set(users_seen.values())) == 3  # every reducer got some users


def test_custom_separator_and_lines_without_one(run_job, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "in").mkdir()
    lines = ["a.b.3", "a.b.1", "a.c.2", "a-z.b.0", "solo", "a", "b.x"]
    (tmp_path / "in" / "x.txt").write_text("\n".join(lines))
    spec = parse_job_text(
        job(
            """
            mapper: {command: [cat]}
            reducer: {callable: "mapreduce_jobs.dataplane_probe:group_values"}
            streaming: {separator: ".", key_fields: 2}
            """,
            reducers=1,
        )
    )
    run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    output = read_parts(tmp_path / "out")["part-00000"].decode()
    got = [tuple(line.split("\t")) for line in output.splitlines()]
    # Key: the first two "."-fields, or the whole line when it has fewer; sorted as bytes.
    expected = {
        "a.b": ["1", "3"], "a.c": ["2"], "a-z.b": ["0"], "solo": [""], "a": [""], "b.x": [""]
    }  # fmt: skip
    assert [k for k, _ in got] == sorted(expected)
    assert {k: sorted(json.loads(v)) for k, v in got} == expected


ENV_MAPPER = (
    "import os, sys\n"
    "sys.stdin.read()\n"
    "names = ['MY_SETTING', 'mapreduce_map_input_file', 'mapreduce_map_input_start',\n"
    "         'mapreduce_task_partition', 'stream_num_map_output_key_fields']\n"
    "print('\\t'.join(os.environ.get(n, '-') for n in names))\n"
)


def test_commands_see_job_settings_and_cmdenv(run_job, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.txt").write_text("one\n")
    (tmp_path / "env_mapper.py").write_text(ENV_MAPPER)
    spec = parse_job_text(
        job(
            f"""
            mapper: {{command: [{PY}, {tmp_path}/env_mapper.py]}}
            streaming: {{cmdenv: {{MY_SETTING: hello}}}}
            """,
            reducers=0,
        )
    )
    run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    line = read_parts(tmp_path / "out")["part-m-00000"].decode().strip()
    assert line.split("\t") == ["hello", f"file://{tmp_path}/in/x.txt", "0", "0", "1"]


def bad_record_input(folder: Path) -> tuple[list[bytes], collections.Counter[str], list[int]]:
    folder.mkdir()
    lines = [f"w{i % 7} w{i % 3}".encode() for i in range(3000)]
    bad_at = [5, 1234, 2999]
    for i in bad_at:
        lines[i] = b"BAD record \xff" + str(i).encode()
    data = b"\n".join(lines) + b"\n"
    (folder / "in.txt").write_bytes(data)
    good = collections.Counter(
        w for i, line in enumerate(lines) if i not in bad_at for w in line.decode().split()
    )
    offsets = [sum(len(line) + 1 for line in lines[:i]) for i in bad_at]
    return lines, good, offsets


RISKY = """
    mapper: {callable: mapreduce_jobs.dataplane_probe:risky_mapper}
    reducer: {callable: mapreduce_jobs.dataplane_probe:total}
    keep_intermediate: true
"""


@pytest.mark.parametrize(
    ("mapper", "reducer"),
    [("risky_mapper", "total"), ("risky_batch_mapper", "total"), ("risky_mapper", "reduce_by"),
     ("risky_counting_mapper", "total"), ("risky_counting_mapper", "reduce_by")],
)  # fmt: skip
def test_bad_records_go_to_a_dead_letter_object_within_budget(
    run_job, tmp_path, mapper, reducer
) -> None:  # type: ignore[no-untyped-def]
    _lines, good, offsets = bad_record_input(tmp_path / "in")
    steps = RISKY.replace("risky_mapper", mapper) + "    bad_records: {max_count: 3}\n"
    if reducer == "reduce_by":
        steps = steps.replace("{callable: mapreduce_jobs.dataplane_probe:total}",
                              "{reduce_by: 'operator:add'}")  # fmt: skip
    spec = parse_job_text(job(steps, reducers=2))
    manifest = run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    assert output_counts(tmp_path / "out") == good
    assert manifest.counters["airflow-mapreduce"]["bad_records"] == 3
    if mapper == "risky_mapper":
        assert manifest.counters["Probe"]["words"] == sum(good.values())
    [map_manifest] = [
        TaskManifest.model_validate_json(p.read_bytes())
        for p in (tmp_path / "out" / "_temporary").rglob("map/*/manifest.json")
    ]
    assert map_manifest.bad_records_uri is not None
    dead = [json.loads(x) for x in Path(map_manifest.bad_records_uri[7:]).read_text().splitlines()]
    assert [d["offset"] for d in dead] == offsets
    assert all(d["uri"] == f"file://{tmp_path}/in/in.txt" and "cannot parse" in d["error"]
               for d in dead)  # fmt: skip
    assert dead[0]["record"] == "BAD record \\xff5"
    # The commit publishes them beside the output, where they outlive the work area.
    published = tmp_path / "out" / "_bad_records" / "map-00000.jsonl"
    assert manifest.bad_records == [f"file://{published}"]
    assert published.read_bytes() == Path(map_manifest.bad_records_uri[7:]).read_bytes()


def test_a_batch_mappers_mapping_goes_to_a_map_only_output(run_job, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "in").mkdir()
    lines = [f"w{i % 7} w{i % 3} w{i % 3}" for i in range(3000)]
    (tmp_path / "in" / "in.txt").write_text("\n".join(lines) + "\n")
    steps = "mapper: {callable: mapreduce_jobs.dataplane_probe:risky_counting_mapper}\n"
    run_job(parse_job_text(job(steps, reducers=0)), f"file://{tmp_path}/in",
            f"file://{tmp_path}/out")  # fmt: skip
    assert output_counts(tmp_path / "out") == collections.Counter(" ".join(lines).split())


def test_over_budget_fails_naming_the_first_bad_record(run_job, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, _, offsets = bad_record_input(tmp_path / "in")
    spec = parse_job_text(job(RISKY + "    bad_records: {max_count: 2}\n", reducers=1))
    with pytest.raises(RecordError, match="over budget") as info:
        run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    assert f"record at byte offset {offsets[0]}" in str(info.value)
    assert "in.txt" in str(info.value)
    no_budget = parse_job_text(job(RISKY, reducers=1))
    with pytest.raises(RecordError, match=f"byte offset {offsets[0]}.*bad_records.max_count"):
        run_job(no_budget, f"file://{tmp_path}/in", f"file://{tmp_path}/out")


def test_jsonlines_items_compressed_inputs_and_compressed_json_output(run_job, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(5)
    items = [{"user": f"u{rng.randrange(30)}", "amount": rng.randrange(100)} for _ in range(4000)]
    chunks = [items[i::3] for i in range(3)]
    text = [b"".join(json.dumps(x).encode() + b"\n" for x in c) for c in chunks]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl.gz").write_bytes(gzip.compress(text[0]))
    (tmp_path / "in" / "b.jsonl.bz2").write_bytes(bz2.compress(text[1]))
    (tmp_path / "in" / "c.jsonl.zst").write_bytes(
        zstandard.ZstdCompressor().compress(text[2] + b"{not json\n")
    )
    spec = parse_job_text(
        job(
            """
            mapper: {callable: mapreduce_jobs.dataplane_probe:item_mapper}
            reducer: {callable: mapreduce_jobs.dataplane_probe:total}
            formats: {input: jsonlines, output: jsonlines, compression: gzip}
            bad_records: {max_count: 1}
            """,
            reducers=2,
        )
    )
    manifest = run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    expected: collections.Counter[str] = collections.Counter()
    for item in items:
        expected[item["user"]] += item["amount"]
    got = {}
    names = sorted(p.name for p in (tmp_path / "out").glob("part-*"))
    assert names == ["part-00000.gz", "part-00001.gz"]
    for name in names:
        for line in gzip.decompress((tmp_path / "out" / name).read_bytes()).splitlines():
            record = json.loads(line)
            got[record["key"]] = record["value"]
    assert got == expected
    assert manifest.counters["airflow-mapreduce"]["bad_records"] == 1
    assert manifest.records == len(expected)


def test_lifecycle_and_counters_of_callables(run_job, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.txt").write_text("a b\nc\n")
    (tmp_path / "marks").mkdir()
    monkeypatch.setenv("PROBE_TEARDOWN_DIR", str(tmp_path / "marks"))
    spec = parse_job_text(
        job(
            """
            mapper: {callable: mapreduce_jobs.dataplane_probe:risky_mapper}
            reducer: {callable: mapreduce_jobs.dataplane_probe:total}
            lifecycle:
              setup: mapreduce_jobs.dataplane_probe:setup
              teardown: mapreduce_jobs.dataplane_probe:teardown
            """,
            reducers=2,
        )
    )
    manifest = run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    assert manifest.counters["Probe"] == {"words": 3, "setups": 3}  # 1 map + 2 reduce tasks
    assert sorted(p.name for p in (tmp_path / "marks").iterdir()) == [
        "map-0", "reduce-0", "reduce-1"
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["command", "callable"])
def test_combiner_runs_on_every_spill(run_job, word_corpus, tmp_path, kind, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The Python sort buffer's way (where GNU sort is missing): sort and combine each spill."""
    monkeypatch.setattr("airflow_mapreduce.worker.map_task.groups_by_sort", lambda fmt: False)
    combiner = (
        "{command: [python3, mapreduce_jobs/wordcount/reducer.py]}"
        if kind == "command"
        else "{callable: mapreduce_jobs.wordcount_callables:combiner}"
    )
    spec = parse_job_text(
        job(f"""
            mapper: {{command: [python3, mapreduce_jobs/wordcount/mapper.py]}}
            combiner: {combiner}
            reducer: {{command: [python3, mapreduce_jobs/wordcount/reducer_current_word.py]}}
            memory: {{sort_buffer: 512KiB}}
        """).replace("split_size: 64KiB", "split_size: 2MiB")
    )
    manifest = run_job(spec, f"file://{word_corpus.folder}", f"file://{tmp_path}/out")
    assert output_counts(tmp_path / "out") == word_corpus.counts
    ours = manifest.counters["airflow-mapreduce"]
    assert ours["spills"] > 3
    assert ours["combine_output_records"] < ours["combine_input_records"]


def test_streaming_mapper_never_sees_lines_that_are_not_json(run_job, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "in").mkdir()
    good = [json.dumps({"n": i}) for i in range(50)]
    lines = [*good[:20], "{broken", *good[20:]]
    (tmp_path / "in" / "items.jsonl").write_text("\n".join(lines) + "\n")
    spec = parse_job_text(
        job(
            """
            mapper: {command: [cat]}
            formats: {input: jsonlines}
            bad_records: {max_count: 1}
            keep_intermediate: true
            """,
            reducers=0,
        )
    )
    manifest = run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    assert read_parts(tmp_path / "out")["part-m-00000"].decode().splitlines() == good
    assert manifest.counters["airflow-mapreduce"]["bad_records"] == 1
    [dead_letter] = (tmp_path / "out" / "_temporary").rglob("bad-records.jsonl")
    [entry] = [json.loads(x) for x in dead_letter.read_text().splitlines()]
    assert entry["record"] == "{broken"
    assert entry["offset"] == sum(len(x) + 1 for x in good[:20])


REDUCER_PY = "mapreduce_jobs/wordcount/reducer.py"
CRASHY_MAPPER = """
import sys
for line in sys.stdin.buffer:
    if line.startswith(b"BAD"):
        sys.stderr.write("cannot take this line\\n")
        sys.exit(3)
    for word in line.split():
        sys.stdout.buffer.write(word + b"\\t1\\n")
"""


@pytest.mark.parametrize("combiner", ["", "combiner: {command: [python3, " + REDUCER_PY + "]}"])
def test_skip_mode_finds_the_lines_a_streaming_mapper_crashes_on(  # type: ignore[no-untyped-def]
    run_job, tmp_path, combiner
) -> None:
    """Hadoop's skip mode: with a bad-record budget, a crashing command is rerun on
    bisected input until the lines it cannot take are isolated; nothing else is lost.
    With a combiner, the failed first pass's sort | combiner is dropped, not half-used."""
    _lines, good, offsets = bad_record_input(tmp_path / "in")
    (tmp_path / "crashy.py").write_text(CRASHY_MAPPER)
    spec = parse_job_text(
        job(
            f"""
            mapper: {{command: [python3, "{tmp_path}/crashy.py"]}}
            reducer: {{command: [python3, {REDUCER_PY}]}}
            bad_records: {{max_count: 3}}
            """,
            reducers=2,
        )
        + combiner
    )
    manifest = run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    assert output_counts(tmp_path / "out") == good
    ours = manifest.counters["airflow-mapreduce"]
    assert ours["bad_records"] == 3 and ours["map_input_records"] == 3000
    dead = [
        json.loads(x) for p in manifest.bad_records for x in Path(p[7:]).read_text().splitlines()
    ]
    assert [d["offset"] for d in dead] == offsets
    assert all("exited with code 3" in d["error"] for d in dead)
    assert dead[1]["record"] == "BAD record \\xff1234"

    crashy = f"mapper: {{command: [python3, '{tmp_path}/crashy.py']}}\n"
    over = parse_job_text(job(crashy + "bad_records: {max_count: 2}\n", reducers=0))
    with pytest.raises(RecordError, match=f"over budget.*byte offset {offsets[0]}"):
        run_job(over, f"file://{tmp_path}/in", f"file://{tmp_path}/out2")


def test_skip_mode_gives_up_on_a_command_that_fails_on_everything(run_job, tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad_record_input(tmp_path / "in")
    spec = parse_job_text(
        job('mapper: {command: ["false"]}\nbad_records: {max_ratio: 1.0}\n', reducers=0)
    )
    limit = _SkipMode.MAX_RUNS  # bisecting all 3000 lines would take ~6000 runs
    with pytest.raises(TaskFailedError, match=f"skip mode gave up after {limit} runs"):
        run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")


def test_a_failing_combiner_command_fails_the_task_without_skip_mode(  # type: ignore[no-untyped-def]
    run_job, tmp_path, capfd
) -> None:
    """Skip mode looks for input the mapper cannot take; a crashing combiner is not that."""
    bad_record_input(tmp_path / "in")
    spec = parse_job_text(
        job(
            """
            mapper: {command: [cat]}
            combiner: {command: ["false"]}
            reducer: {command: [cat]}
            bad_records: {max_count: 3}
            """,
            reducers=1,
        )
    )
    with pytest.raises(
        TaskFailedError, match=r"combiner on .*: command \['false'\] exited with code 1"
    ):
        run_job(spec, f"file://{tmp_path}/in", f"file://{tmp_path}/out")
    assert "skip mode" not in capfd.readouterr().err


def test_the_latest_events_example_keeps_each_users_newest(run_job, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # dags/latest_events.yaml on other input: timestamps of 1 to 7 digits (bytes order
    # would be wrong), several map tasks, spills; checked against a plain Python sort.
    rng = random.Random(8)
    events = {
        f"user{u}": {t: f"e{u}-{t}" for t in rng.sample(range(1, 10**7), rng.randrange(1, 400))}
        for u in range(60)
    }
    lines = [
        f"{user}\t{t}\t{event}" for user, by_time in events.items() for t, event in by_time.items()
    ]
    rng.shuffle(lines)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "events.tsv").write_text("\n".join(lines) + "\n")
    example = yaml.safe_load((DAGS / "latest_events.yaml").read_text())
    example["input"]["split_size"] = "64KiB"
    example["memory"] = {"sort_buffer": "64KiB"}
    example["reducers"] = 3
    run_job(
        parse_job_text(yaml.safe_dump(example)), f"file://{tmp_path}/in", f"file://{tmp_path}/out"
    )

    expected = {
        f"{user}\t{t}\t{by_time[t]}" for user, by_time in events.items()
        for t in sorted(by_time, reverse=True)[:3]
    }  # fmt: skip
    parts = read_parts(tmp_path / "out")
    got = [line for data in parts.values() for line in data.decode().splitlines()]
    assert len(got) == len(expected) and set(got) == expected
    for data in parts.values():  # per user newest first, as the reducer received them
        rows = [line.split("\t") for line in data.decode().splitlines()]
        assert rows == sorted(rows, key=lambda row: (row[0], -int(row[1])))
