"""Input that cannot be read fails the map task in one line naming the file and the split:
corrupt or truncated compressed files, and storage that does not answer."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zstandard

from airflow_mapreduce.errors import TaskFailedError
from airflow_mapreduce.job import parse_job_text
from airflow_mapreduce.plan.tasks import InputSplit, JobRuntime, MapTaskSpec
from airflow_mapreduce.storage import FileSystems
from tests.servers import free_port

DATA = b"".join(b"w%d\t%d\n" % (i % 997, i) for i in range(200_000))  # 2.4 MB


def _flipped(data: bytes) -> bytes:
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0xFF
    return bytes(damaged)


BAD_FILES = {
    "truncated.gz": gzip.compress(DATA)[: len(gzip.compress(DATA)) // 2],
    "not-gzip.gz": DATA[:5000],
    "damaged.gz": _flipped(gzip.compress(DATA)),
    "garbage.bz2": b"BZh9" + bytes(range(256)) * 20,
    "truncated.bz2": bz2.compress(DATA)[:1000],
    "truncated.xz": lzma.compress(DATA)[:-100],
    "not-zstd.zst": DATA[:5000],
}
MAPPERS = {
    "command": "mapper: {command: [cat]}\n",
    "callable": "mapper: {callable: mapreduce_jobs.wordcount_callables:mapper}\n",
}


def job(mapper: str) -> str:
    return (
        "dag_id: bad\ninput: {uri: unused, split_size: 64MiB}\noutput: unused\nreducers: 1\n"
        f"{mapper}reducer: {{command: [cat]}}\n"
    )


@pytest.mark.parametrize("mapper", sorted(MAPPERS))
@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_corrupt_compressed_file_fails_naming_it_and_its_split(  # type: ignore[no-untyped-def]
    run_job, tmp_path, name, mapper
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "good.txt").write_bytes(DATA[:1000])
    (tmp_path / "in" / name).write_bytes(BAD_FILES[name])
    with pytest.raises(TaskFailedError) as failed:
        run_job(
            parse_job_text(job(MAPPERS[mapper])), f"file://{tmp_path}/in", f"file://{tmp_path}/out"
        )
    message = str(failed.value)
    assert message.startswith(f"cannot read input split file://{tmp_path}/in/{name} (whole file)")
    assert "data is corrupt or truncated" in message and "Replace or remove the file" in message
    assert "\n" not in message
    assert not (tmp_path / "out" / "_SUCCESS").exists()


def test_a_truncated_zstd_file_fails(run_job, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "in").mkdir()
    compressed = zstandard.ZstdCompressor().compress(DATA)
    (tmp_path / "in" / "truncated.zst").write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(TaskFailedError, match="corrupt or truncated"):
        run_job(
            parse_job_text(job(MAPPERS["command"])),
            f"file://{tmp_path}/in",
            f"file://{tmp_path}/out",
        )


def test_an_input_file_removed_after_the_plan_fails_naming_it(
    run_job, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from airflow_mapreduce.worker import map_task

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "data.txt").write_bytes(DATA)
    real = map_task.iter_split_blocks

    def removed_first(files, split):  # type: ignore[no-untyped-def]
        os.remove(split.uri.removeprefix("file://"))
        return real(files, split)

    monkeypatch.setattr(map_task, "iter_split_blocks", removed_first)
    with pytest.raises(TaskFailedError) as failed:
        run_job(
            parse_job_text(job(MAPPERS["command"])),
            f"file://{tmp_path}/in",
            f"file://{tmp_path}/out",
        )
    message = str(failed.value)
    split = f"file://{tmp_path}/in/data.txt[0:{len(DATA)}]"
    assert message.startswith(f"cannot read input split {split} from storage (FileNotFoundError")
    assert "still there and readable" in message


def _map_task_on_s3(tmp_path: Path, uri: str, mapper: str) -> str:
    """A map task spec (on local disk) whose split is on S3, as the planner writes it."""
    if uri.endswith(".gz"):
        split = InputSplit(uri=uri, offset=0, length=None, compression="gzip")
    else:
        split = InputSplit(uri=uri, offset=0, length=1000)
    spec = MapTaskSpec(
        dag_id="bad",
        run_id="r1",
        task_index=0,
        job=JobRuntime.from_job(parse_job_text(job(mapper)), 1),
        splits=[split],
        task_dir=f"file://{tmp_path}/work/map-00000",
        manifest_uri=f"file://{tmp_path}/work/map-00000/manifest.json",
    )
    spec_uri = f"file://{tmp_path}/work/map-00000/spec.json"
    FileSystems().write_bytes(spec_uri, json.dumps(spec.model_dump(mode="json")).encode())
    return spec_uri


@pytest.mark.parametrize(
    ("key", "mapper"), [("in/data.txt", "command"), ("in/data.gz", "callable")]
)
def test_an_unreachable_s3_endpoint_fails_in_a_few_lines_and_seconds(
    tmp_path: Path, key: str, mapper: str
) -> None:
    """Nothing listens at the endpoint: the worker says which split it could not read and
    where it tried, in its one FAILED line, after botocore's retries (about 10 s)."""
    port = free_port()
    spec_uri = _map_task_on_s3(tmp_path, f"s3://bucket/{key}", MAPPERS[mapper])
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }
    dags = Path(__file__).resolve().parents[2] / "dags"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "airflow_mapreduce.worker", spec_uri],
        env=env,
        cwd=dags,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert time.monotonic() - started < 60
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) <= 5, done.stderr
    failed = lines[-1]
    assert failed.startswith(
        f"airflow-mapreduce worker: FAILED: cannot read input split s3://bucket/{key}"
    )
    assert f"http://127.0.0.1:{port}" in failed and "from storage" in failed
    assert "AWS_ENDPOINT_URL" in failed and "corrupt" not in failed
