"""scripts/airflow.sh: one command for a local Airflow with its UI. It starts, prints a login
that works, serves the repository's DAGs, and leaves nothing behind on Ctrl-C; a port that is
taken is refused before anything starts."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "airflow.sh"


def script_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PORT"}
    return {
        **env,
        "AIRFLOW_MAPREDUCE_HOME": str(home),
        "AIRFLOW__CORE__PARALLELISM": "2",  # 2 cores
        # A busy 2-core machine can take long to import providers while parsing.
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
        "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "300",
        **extra,
    }


def processes_of(home: Path) -> list[str]:
    """Live processes whose environment points AIRFLOW_HOME at `home`: all of Airflow's."""
    marker = f"AIRFLOW_HOME={home}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):  # gone meanwhile, or a zombie
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
                found.append(f"{proc.name}: {cmdline.decode(errors='replace')}")
    return found


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return True
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@contextlib.contextmanager
def airflow_script(home: Path, port: int, out: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`PORT=port bash scripts/airflow.sh` in a session of its own, like a terminal's job."""
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            ["bash", str(SCRIPT)],
            env=script_env(home, PORT=str(port)),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:  # only when the test failed half-way: stop whatever it left running
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)
        for leftover in processes_of(home):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(leftover.split(":")[0]), signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
@pytest.mark.integration
def test_the_script_serves_the_dags_with_its_printed_login_and_stops_cleanly_on_ctrl_c(
    tmp_path: Path,
) -> None:
    home, out, port = tmp_path / "airflow", tmp_path / "out.txt", free_port()
    with airflow_script(home, port, out) as script:
        deadline = time.monotonic() + 300  # a busy 2-core machine: healthy after 20-100 s

        def printed(pattern: str) -> str:
            while time.monotonic() < deadline and script.poll() is None:
                if found := re.search(pattern, out.read_text(errors="replace")):
                    return found.group(1)
                time.sleep(1)
            pytest.fail(f"no {pattern!r} in the script's output:\n{out.read_text()[-4000:]}")

        url = printed(r"Airflow is up:\s+(http://\S+)")
        user = printed(r"user:\s+(\S+)")
        password = printed(r"password:\s+(\S+)")
        assert (url, user) == (f"http://127.0.0.1:{port}", "admin")

        # No kept-alive connections: the API server closes idle ones (see tests/airflow).
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=url, timeout=60, limits=limits) as client:
            token = client.post("/auth/token", json={"username": user, "password": password})
            assert token.status_code == 201, token.text
            auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
            while (dag := client.get("/api/v2/dags/wordcount", headers=auth)).status_code == 404:
                assert time.monotonic() < deadline, "the wordcount DAG was never parsed"
                time.sleep(2)
            assert dag.status_code == 200, dag.text
            assert dag.json()["dag_id"] == "wordcount"

        os.killpg(script.pid, signal.SIGINT)  # what Ctrl-C in its terminal sends
        stopping = time.monotonic()
        script.wait(timeout=60)
        stopped_in = time.monotonic() - stopping
        assert script.returncode != 0  # interrupted
        assert processes_of(home) == []
        assert not port_in_use(port)
        assert "Airflow stopped." in out.read_text()
        print(f"stopped in {stopped_in:.1f} s")


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = subprocess.run(
            ["bash", str(SCRIPT), "--port", str(port)],
            env=script_env(home),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert refused.returncode == 1
    assert f"Port {port} on 127.0.0.1 is already in use" in refused.stderr
    assert "--port" in refused.stderr  # how to pick another
    assert not home.exists()  # nothing installed or started
