"""S3 errors (throttling, 5xx, connection resets) and an S3 server restart mid-run.

Every request of the planner, workers and commit goes through S3FaultProxy; the job must
finish through botocore's retries with backoff (AWS_RETRY_MODE/AWS_MAX_ATTEMPTS for the
workers, `config_kwargs.retries` of the Airflow connection for the Airflow side).
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import s3fs

from airflow_mapreduce.job import parse_job_text
from airflow_mapreduce.plan.commit import commit_run
from airflow_mapreduce.plan.planner import RunTarget, plan_run
from airflow_mapreduce.plan.shuffle import shuffle_run
from airflow_mapreduce.storage import FileSystems
from tests.servers import free_port
from tests.wordcount import word_counts

from .conftest import WORDCOUNT_JOB, SmallCorpus, start_worker, worker_env
from .s3_fault_proxy import S3FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY, SECRET = "test-access-key", "test-secret-key-do-not-leak"
RETRIES = {"mode": "standard", "max_attempts": 12}


def s3_client(endpoint: str) -> s3fs.S3FileSystem:
    """Like Airflow's get_fs with connection extras {"config_kwargs": {"retries": ...}}."""
    return s3fs.S3FileSystem(
        key=KEY,
        secret=SECRET,
        client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"},
        config_kwargs={"retries": dict(RETRIES)},  # botocore edits the dict it gets
    )


def retrying_worker_env(endpoint: str) -> dict[str, str]:
    return worker_env(
        {
            "AWS_ACCESS_KEY_ID": KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_RETRY_MODE": RETRIES["mode"],
            "AWS_MAX_ATTEMPTS": str(RETRIES["max_attempts"]),
        }
    )


def run_workers(spec_uris: list[str], env: dict[str, str], during=None) -> None:  # type: ignore[no-untyped-def]
    """All tasks of a phase at once; `during()` runs while they do (e.g. a server restart)."""
    procs = [start_worker(uri, env) for uri in spec_uris]
    if during is not None:
        during()
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err.decode()


def s3_word_counts(fs: s3fs.S3FileSystem, out: str) -> collections.Counter[str]:
    fs.invalidate_cache()
    names = sorted(p.rsplit("/", 1)[1] for p in fs.find(out))
    assert names[:3] == ["_SUCCESS", "_job_history.json", "_manifest.json"]
    return word_counts({name: fs.cat(f"{out}/{name}") for name in names[3:]})


def run_job(files: FileSystems, bucket: str, env: dict[str, str], during_reduce=None) -> None:  # type: ignore[no-untyped-def]
    job = parse_job_text(WORDCOUNT_JOB)
    target = RunTarget(
        job.dag_id, "r1", (f"s3://{bucket}/input/",), f"s3://{bucket}/out", None, 3, 4
    )
    plan_uri, map_specs, _ = plan_run(files, job, target)
    run_workers(map_specs, env)
    run_workers(shuffle_run(files, plan_uri, 3), env, during=during_reduce)
    commit_run(files, plan_uri)


@pytest.mark.parametrize(
    "seed", [int(s) + 7 for s in os.environ.get("AMR_FAULT_SEEDS", "0").split(",")]
)
def test_job_completes_through_s3_errors(seed: int, s3_server, small_corpus: SmallCorpus) -> None:  # type: ignore[no-untyped-def]
    bucket = f"faults-{seed}"
    direct = s3_server.filesystem()
    direct.mkdir(bucket)
    direct.put(f"{small_corpus.folder}/", f"{bucket}/input/", recursive=True)
    with S3FaultProxy(s3_server.endpoint, fault_rate=0.12, seed=seed) as proxy:
        files = FileSystems({"s3": s3_client(proxy.endpoint)})
        run_job(files, bucket, retrying_worker_env(proxy.endpoint))
    assert sum(proxy.injected.values()) >= 10, proxy.injected  # faults really happened
    assert set(proxy.injected) == {"slow_down", "internal_error", "reset_before", "reset_after"}
    assert s3_word_counts(direct, f"{bucket}/out") == small_corpus.counts


class RestartableWeed:
    """A SeaweedFS server of this test alone, so that restarting it disturbs no other test."""

    def __init__(self, data: Path) -> None:
        self.weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or "weed"
        self.data = data
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.weed, "mini", f"-dir={self.data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             f"-s3.port={self.port}", "-admin.ui=false", "-webdav=false"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                s3_client(self.endpoint).ls("")
                return
            except Exception:
                assert time.monotonic() < deadline and self.proc.poll() is None
                time.sleep(0.2)

    def stop(self, signal: int = 15) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()


@pytest.fixture
def own_weed(tmp_path: Path) -> Iterator[RestartableWeed]:
    server = RestartableWeed(tmp_path / "weed")
    server.start()
    try:
        yield server
    finally:
        server.stop(9)  # its data is a temporary folder: no need to wait for a clean exit


def test_server_restart_mid_run_is_survived(
    own_weed: RestartableWeed, small_corpus: SmallCorpus
) -> None:
    direct = s3_client(own_weed.endpoint)
    direct.mkdir("restart")
    direct.put(f"{small_corpus.folder}/", "restart/input/", recursive=True)
    restarts = []

    def restart() -> None:
        time.sleep(0.3)  # the reduce workers are starting and reading
        own_weed.stop()
        time.sleep(1.0)
        own_weed.start()
        restarts.append(1)

    with S3FaultProxy(own_weed.endpoint, fault_rate=0.0, seed=0) as proxy:
        files = FileSystems({"s3": s3_client(proxy.endpoint)})
        run_job(files, "restart", retrying_worker_env(proxy.endpoint), during_reduce=restart)
    assert restarts == [1]
    assert s3_word_counts(s3_client(own_weed.endpoint), "restart/out") == small_corpus.counts
