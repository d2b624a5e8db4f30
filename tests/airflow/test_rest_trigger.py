"""A real Airflow (`airflow standalone`: api-server, scheduler, dag-processor, triggerer)
on 127.0.0.1: token, unpause, trigger the example DAG over REST with conf, poll to success.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.servers import free_port
from tests.wordcount import output_counts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
DAG_ID = "wordcount"


@dataclass(frozen=True)
class Airflow:
    url: str
    client: httpx.Client


def _wait(what: str, check, timeout: float, proc: subprocess.Popen[bytes], log: Path):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"airflow standalone exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
            )
        try:
            if result := check():
                return result
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    home = tmp_path_factory.mktemp("airflow-standalone")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "2",  # 2 cores: it pre-starts one worker per slot
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        # A busy 2-core machine can take long to import providers while parsing.
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
        "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "300",
    }
    log = home / "standalone.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "airflow"), "standalone"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        client = httpx.Client(base_url=url, timeout=60)  # a busy 2-core machine answers slowly
        _wait(
            "the API server",
            lambda: client.get("/api/v2/monitor/health").is_success,
            300,
            proc,
            log,
        )
        passwords = home / "simple_auth_manager_passwords.json.generated"
        users = _wait(
            "the password file",
            lambda: passwords.exists() and json.loads(passwords.read_text()),
            30,
            proc,
            log,
        )
        username, password = next(iter(users.items()))
        token = client.post("/auth/token", json={"username": username, "password": password})
        token.raise_for_status()
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        _wait(
            f"DAG {DAG_ID} to be parsed",
            lambda: client.get(f"/api/v2/dags/{DAG_ID}").is_success,
            300,
            proc,
            log,
        )
        yield Airflow(url=url, client=client)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _trigger(airflow: Airflow, conf: dict[str, object]) -> httpx.Response:
    return airflow.client.post(
        f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf}
    )


def test_trigger_with_conf_over_rest_runs_to_success(airflow: Airflow, tmp_path: Path) -> None:
    client = airflow.client
    corpus = tmp_path / "in"
    corpus.mkdir()
    texts = ["one fish two fish\nred fish blue fish\n", "the cat in the hat\n" * 50, "fish\n"]
    for index, text in enumerate(texts):
        (corpus / f"part-{index}.txt").write_text(text)
    expected = collections.Counter("".join(texts).split())
    output = tmp_path / "out"

    patched = client.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False})
    assert patched.is_success and patched.json()["is_paused"] is False

    # The Trigger DAG form's params carry the YAML's rules: bad overrides never start a run.
    for bad in ({"reducers": 0}, {"input": "http://example.com/x"}, {"output": "../escape"}):
        rejected = _trigger(airflow, {"input": f"file://{corpus}", **bad})
        assert rejected.status_code == 400, (bad, rejected.text)

    # Three input files would give three map tasks; parallelism 1 from conf makes one.
    conf = {
        "input": f"file://{corpus}",
        "output": f"file://{output}",
        "reducers": 2,
        "parallelism": 1,
    }
    response = _trigger(airflow, conf)
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    deadline = time.monotonic() + 300
    state = "queued"
    while time.monotonic() < deadline and state not in ("success", "failed"):
        time.sleep(1)
        try:
            state = client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}").json()["state"]
        except httpx.TimeoutException:
            continue
    assert state == "success"

    assert output_counts(output) == expected
    assert sorted(p.name for p in output.glob("part-*")) == ["part-00000", "part-00001"]

    tis = client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances").json()
    maps = [ti for ti in tis["task_instances"] if ti["task_id"] == "map"]
    assert len(maps) == 1
    assert maps[0]["rendered_map_index"] == "split 0: part-0.txt[0:37B] +2 more"
    reduces = [ti for ti in tis["task_instances"] if ti["task_id"] == "reduce"]
    assert sorted(ti["rendered_map_index"] for ti in reduces) == ["partition 0", "partition 1"]
