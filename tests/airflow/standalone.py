"""A real Airflow (`airflow standalone`: api-server, scheduler, dag-processor, triggerer) on
127.0.0.1 for tests that check a promise about Airflow's own behaviour: REST with the
values a Trigger form sends, the DAG processor's import errors and stale DAGs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.servers import free_port

VENV_BIN = Path(sys.executable).parent
T = TypeVar("T")


@dataclass(frozen=True)
class Airflow:
    url: str
    client: httpx.Client
    home: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def wait(self, what: str, check: Callable[[], T | None], timeout: float) -> T:
        """Poll `check` until it returns something truthy; fail with the log's tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"airflow standalone exited ({self.proc.returncode}):\n"
                    f"{self.log.read_text(errors='replace')[-3000:]}"
                )
            try:
                if result := check():
                    return result
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        pytest.fail(
            f"timed out waiting for {what}:\n{self.log.read_text(errors='replace')[-3000:]}"
        )

    def unpause(self, dag_id: str) -> None:
        patched = self.client.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False})
        assert patched.is_success and patched.json()["is_paused"] is False, patched.text

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> httpx.Response:
        """What the Trigger form, curl and the REST client send: conf values as typed."""
        return self.client.post(
            f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf}
        )

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        """The run's final state (success or failed)."""

        def finished() -> str | None:
            state = self.client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
            return state if state in ("success", "failed") else None

        return self.wait(f"run {run_id} of {dag_id} to finish", finished, timeout)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        tis = self.client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        tis.raise_for_status()
        return list(tis.json()["task_instances"])


@contextlib.contextmanager
def standalone(
    home: Path, dags_folder: Path, wait_for_dag: str, extra_env: dict[str, str] | None = None
) -> Iterator[Airflow]:
    """Start `airflow standalone` over `dags_folder`; ready once `wait_for_dag` is parsed."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
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
        **(extra_env or {}),
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
    # A busy 2-core machine answers slowly. No kept-alive connections: the API server
    # closes idle ones after a few seconds, and a request sent on one just closed by the
    # server fails with "connection reset".
    client = httpx.Client(
        base_url=url, timeout=60, limits=httpx.Limits(max_keepalive_connections=0)
    )
    airflow = Airflow(url=url, client=client, home=home, log=log, proc=proc)
    try:
        airflow.wait("the API server", lambda: client.get("/api/v2/monitor/health").is_success, 300)
        passwords = home / "simple_auth_manager_passwords.json.generated"
        users = airflow.wait(
            "the password file",
            lambda: passwords.exists() and json.loads(passwords.read_text()),
            30,
        )
        username, password = next(iter(users.items()))
        token = client.post("/auth/token", json={"username": username, "password": password})
        token.raise_for_status()
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        airflow.wait(
            f"DAG {wait_for_dag} to be parsed",
            lambda: client.get(f"/api/v2/dags/{wait_for_dag}").is_success,
            300,
        )
        yield airflow
    finally:
        client.close()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
