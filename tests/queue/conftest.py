"""The queue tests run once per backend (Redis, NATS JetStream); the servers are the
session's (tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.servers import QueueServer


@pytest.fixture(params=["redis", "nats"])
def queue_server(request: pytest.FixtureRequest) -> QueueServer:
    """Each test using it runs once per backend: one conformance suite for both."""
    return request.getfixturevalue(f"{request.param}_server")  # type: ignore[no-any-return]
