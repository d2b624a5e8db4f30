"""Many small files in one map task: the streaming mapper starts once per task and reads
every split in order (Hadoop's CombineFileInputFormat), unless the job asks for a process
per split (streaming.per_split_env) to see each split's mapreduce_map_input_*. Skip
mode, the unread-input check and bad JSON still name each record's own file. On local
files and on a real S3 server (SeaweedFS). References are computed here with Counter."""

from __future__ import annotations

import collections
import gzip
import json
import posixpath
import random
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from airflow_mapreduce.errors import CommandFailedError
from airflow_mapreduce.job import parse_job_text
from airflow_mapreduce.plan.commit import OutputManifest
from airflow_mapreduce.storage import FileSystems
from tests.wordcount import word_counts

PY = sys.executable
REDUCER = "[python3, mapreduce_jobs/wordcount/reducer.py]"
# Mappers note each start of theirs: a line (their PID) in $PID_FILE.
NOTE_START = """
import os, sys
with open(os.environ["PID_FILE"], "a") as f:
    f.write(f"{os.getpid()}\\n")
"""
# A word count that exits 3 on a line "BAD...".
MAPPER = (
    NOTE_START
    + """
for line in sys.stdin:
    if line.startswith("BAD"):
        sys.exit(3)
    for word in line.split():
        sys.stdout.write(word + "\\t1\\n")
"""
)
JSON_MAPPER = (
    NOTE_START
    + """
import json
for line in sys.stdin:
    print(json.loads(line)["word"] + "\\t1")
"""
)
# Prints a record and exits 0 without reading its input.
NOT_READING = "print('a\\t1')\n"
# Each input line prefixed with the Hadoop settings this process was started with.
ENV_MAPPER = """
import os, sys
names = ["mapreduce_map_input_file", "mapreduce_map_input_start",
         "mapreduce_map_input_length", "mapreduce_task_partition"]
prefix = "\\t".join(os.environ.get(name, "-") for name in names)
for line in sys.stdin:
    sys.stdout.write(prefix + "\\t" + line)
"""
WORDS = [f"w{i}" for i in range(60)] + ["naïve", "日本"]


@dataclass
class Store:
    files: FileSystems
    root: str  # input under <root>/in/, output <root>/out

    @property
    def input_uri(self) -> str:
        return f"{self.root}/in/"

    @property
    def output_uri(self) -> str:
        return f"{self.root}/out"

    def uri_of(self, name: str) -> str:
        return f"{self.root}/in/{name}"

    def write_inputs(self, inputs: dict[str, bytes]) -> None:
        fs = self.files.fs(self.root)
        if self.root.startswith("s3://"):
            fs.pipe({self.uri_of(name): data for name, data in inputs.items()})  # one batch
            return
        for name, data in inputs.items():
            self.files.write_bytes(self.uri_of(name), data)

    def parts(self) -> dict[str, bytes]:
        fs = self.files.fs(self.root)
        found = fs.find(self.output_uri)
        return {
            posixpath.basename(p): fs.cat_file(p)
            for p in found
            if posixpath.basename(p).startswith("part-")
        }


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.integration)])
def store(request, tmp_path) -> Iterator[Store]:  # type: ignore[no-untyped-def]
    if request.param == "file":
        yield Store(FileSystems(), f"file://{tmp_path}")
        return
    s3 = request.getfixturevalue("s3_server").filesystem()
    bucket = f"small-{zlib.crc32(request.node.name.encode())}"
    s3.mkdir(bucket)
    yield Store(FileSystems({"s3": s3}), f"s3://{bucket}")


def small_files(count: int, seed: int = 1) -> dict[str, bytes]:
    """`count` files of a line or two of a few words (~20 bytes), one without a final LF."""
    rng = random.Random(seed)
    inputs = {}
    for index in range(count):
        lines = [" ".join(rng.choices(WORDS, k=3)) for _ in range(rng.randint(1, 2))]
        text = "\n".join(lines) + ("" if index == 7 else "\n")
        inputs[f"f-{index:04d}.txt"] = text.encode()
    return inputs


def counted(inputs: dict[str, bytes], but: bytes | None = None) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for data in inputs.values():
        for line in data.splitlines():
            if line != but:
                counts.update(line.decode().split())
    return counts


def job(tmp_path: Path, body: str, mapper: str = MAPPER, reducers: int = 2) -> str:
    (tmp_path / "mapper.py").write_text(mapper)
    return (
        "dag_id: small\ninput: {uri: unused, split_size: 64MiB}\noutput: unused\n"
        f"reducers: {reducers}\nmapper: {{command: [{PY}, {tmp_path}/mapper.py]}}\n"
        f"streaming: {{cmdenv: {{PID_FILE: {tmp_path}/pids}}}}\n" + body
    )


def starts(tmp_path: Path) -> int:
    pids = tmp_path / "pids"
    return len(pids.read_text().splitlines()) if pids.exists() else 0


def bad_records(store: Store, manifest: OutputManifest) -> list[dict[str, object]]:
    return [
        json.loads(line)
        for uri in manifest.bad_records
        for line in store.files.read_bytes(uri).splitlines()
    ]


@pytest.mark.parametrize(
    "steps",
    [
        f"reducer: {{command: {REDUCER}}}\n",
        f"combiner: {{command: {REDUCER}}}\nreducer: {{command: {REDUCER}}}\n",  # | sort |
    ],
    ids=["line buffer", "sort and combiner"],
)
def test_a_map_task_of_many_small_files_starts_its_mapper_once(  # type: ignore[no-untyped-def]
    run_job, store, tmp_path, steps
) -> None:
    inputs = small_files(300)
    store.write_inputs(inputs)
    spec = parse_job_text(job(tmp_path, steps))
    manifest = run_job(spec, store.input_uri, store.output_uri, files=store.files)
    assert starts(tmp_path) == 1  # one map task (64 MiB splits), one mapper process
    assert word_counts(store.parts()) == counted(inputs)
    lines = sum(len(data.splitlines()) for data in inputs.values())
    assert manifest.counters["airflow-mapreduce"]["map_input_records"] == lines
    assert manifest.counters["airflow-mapreduce"]["map_input_bytes"] == sum(
        map(len, inputs.values())
    )


def test_each_map_task_starts_its_mapper_once(run_job, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    inputs = small_files(300)
    store.write_inputs(inputs)
    text = job(tmp_path, f"reducer: {{command: {REDUCER}}}\n").replace("64MiB", "1KiB")
    run_job(parse_job_text(text), store.input_uri, store.output_uri, files=store.files,
            max_map_tasks=3)  # fmt: skip
    assert starts(tmp_path) == 3
    assert word_counts(store.parts()) == counted(inputs)


def test_per_split_env_starts_a_mapper_per_split_with_its_settings(  # type: ignore[no-untyped-def]
    run_job, store, tmp_path
) -> None:
    inputs = small_files(20)
    store.write_inputs(inputs)
    text = job(tmp_path, "", mapper=ENV_MAPPER, reducers=0)
    on = text.replace("streaming: {", "streaming: {per_split_env: true, ")
    run_job(parse_job_text(on), store.input_uri, store.output_uri, files=store.files)
    got = sorted(b"".join(store.parts().values()).splitlines())
    expected = sorted(
        f"{store.uri_of(name)}\t0\t{len(data)}\t0\t".encode() + line
        for name, data in inputs.items()
        for line in data.splitlines()
    )
    assert got == expected

    # Without it, one process reads all 20 files: it sees the task's settings only.
    run_job(parse_job_text(text), store.input_uri, store.output_uri + "2", files=store.files)
    fs = store.files.fs(store.root)
    output = fs.cat_file(f"{store.output_uri}2/part-m-00000")
    assert {line.rsplit(b"\t", 1)[0] for line in output.splitlines()} == {b"-\t-\t-\t0"}


def test_skip_mode_finds_the_bad_record_in_the_fifth_of_twenty_files(  # type: ignore[no-untyped-def]
    run_job, store, tmp_path
) -> None:
    inputs = small_files(20)
    bad = b"BAD w1 w2"
    first, rest = inputs["f-0004.txt"].split(b"\n", 1)
    inputs["f-0004.txt"] = first + b"\n" + bad + b"\n" + rest
    store.write_inputs(inputs)
    body = f"reducer: {{command: {REDUCER}}}\nbad_records: {{max_count: 1}}\n"
    manifest = run_job(
        parse_job_text(job(tmp_path, body)), store.input_uri, store.output_uri, files=store.files
    )
    assert word_counts(store.parts()) == counted(inputs, but=bad)
    dead = bad_records(store, manifest)
    assert [(d["uri"], d["offset"], d["record"]) for d in dead] == [
        (store.uri_of("f-0004.txt"), len(first) + 1, bad.decode())
    ]
    assert "exited with code 3" in str(dead[0]["error"])
    ours = manifest.counters["airflow-mapreduce"]
    assert ours["bad_records"] == 1
    assert ours["map_input_records"] == sum(len(d.splitlines()) for d in inputs.values())


def test_a_mapper_that_exits_early_over_many_files_fails_as_unread_input(  # type: ignore[no-untyped-def]
    run_job, store, tmp_path
) -> None:
    inputs = small_files(50)
    store.write_inputs(inputs)
    spec = parse_job_text(job(tmp_path, f"reducer: {{command: {REDUCER}}}\n", mapper=NOT_READING))
    with pytest.raises(CommandFailedError) as failed:
        run_job(spec, store.input_uri, store.output_uri, files=store.files)
    message = str(failed.value)
    assert failed.value.role == "mapper"
    assert message.startswith(
        f"mapper on splits {store.uri_of('f-0000.txt')}[0:{len(inputs['f-0000.txt'])}], "
    )
    assert " and 47 more: command " in message
    assert "exited (code 0) before reading all of its input" in message
    assert f"The input fed to it last: split {store.uri_of('f-0049.txt')}" in message
    assert not store.files.exists(f"{store.output_uri}/_SUCCESS")


def test_compressed_and_jsonlines_small_files_share_one_mapper(  # type: ignore[no-untyped-def]
    run_job, store, tmp_path
) -> None:
    """gzip, zstd and plain JSON-lines files in one task; a line that is not JSON is a bad
    record named with its own file, and never reaches the mapper."""
    items = {f"f-{i:02d}": [{"word": w} for w in WORDS[i : i + 3]] for i in range(30)}
    encoded = {k: b"".join(json.dumps(v).encode() + b"\n" for v in vs) for k, vs in items.items()}
    encoded["f-11"] += b"{not json\n"
    inputs = {}
    for index, (name, data) in enumerate(sorted(encoded.items())):
        if index % 3 == 0:
            inputs[f"{name}.jsonl.gz"] = gzip.compress(data)
        elif index % 3 == 1:
            inputs[f"{name}.jsonl.zst"] = zstandard.ZstdCompressor().compress(data)
        else:
            inputs[f"{name}.jsonl"] = data
    store.write_inputs(inputs)
    body = (
        f"reducer: {{command: {REDUCER}}}\nformats: {{input: jsonlines}}\n"
        "bad_records: {max_count: 1}\n"
    )
    spec = parse_job_text(job(tmp_path, body, mapper=JSON_MAPPER))
    manifest = run_job(spec, store.input_uri, store.output_uri, files=store.files)
    assert starts(tmp_path) == 1
    expected = collections.Counter(item["word"] for vs in items.values() for item in vs)
    assert word_counts(store.parts()) == expected
    dead = bad_records(store, manifest)
    assert [(d["uri"], d["record"]) for d in dead] == [(store.uri_of("f-11.jsonl"), "{not json")]
