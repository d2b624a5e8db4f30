"""The work-queue connection types: the queue URL WorkQueueHook builds from a connection's
fields (form-style JSON and URI-style env vars), the Test button against the real servers,
and the types' registration with Airflow's providers manager."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_mapreduce.hooks.work_queue import NatsQueueHook, RedisQueueHook, WorkQueueHook
from airflow_mapreduce.queue import QueueError
from tests.servers import QueueServer, free_port


def url(monkeypatch: pytest.MonkeyPatch, conn: dict[str, object] | str) -> str:
    """The URL of a connection given as AIRFLOW_CONN_Q (JSON fields or a URI)."""
    monkeypatch.setenv("AIRFLOW_CONN_Q", conn if isinstance(conn, str) else json.dumps(conn))
    return WorkQueueHook("q").get_url()


@pytest.mark.parametrize(
    ("conn", "expected"),
    [
        # The Connections form's fields (extras under their own names).
        ({"conn_type": "mapreduce_redis", "host": "redis.svc", "port": 6380,
          "password": "p@ss/word", "extra": {"db": 2}},
         "redis://:p%40ss%2Fword@redis.svc:6380/2"),
        ({"conn_type": "mapreduce_redis", "host": "redis.svc", "login": "mr", "password": "s",
          "extra": {"ssl": True, "ssl_cert_reqs": "none", "ssl_ca_certs": "/etc/ca.pem"}},
         "rediss://mr:s@redis.svc:6379/0?ssl_cert_reqs=none&ssl_ca_certs=%2Fetc%2Fca.pem"),
        ({"conn_type": "mapreduce_redis", "host": "fd00::1"}, "redis://[fd00::1]:6379/0"),
        # The Redis provider's type reads alike; TLS files only matter with TLS.
        ({"conn_type": "redis", "host": "r", "extra": {"ssl_ca_certs": "/ca"}}, "redis://r:6379/0"),
        ({"conn_type": "mapreduce_nats", "host": "nats.svc", "login": "u", "password": "s"},
         "nats://u:s@nats.svc:4222"),
        ({"conn_type": "mapreduce_nats", "host": "nats.svc", "password": "tok",
          "extra": {"tls": True}}, "tls://tok@nats.svc:4222"),
        # Connection URIs: the path is the Redis database, query arguments are extras.
        ("redis://:pw@rhost:6381/3", "redis://:pw@rhost:6381/3"),
        ("redis://rhost?ssl=true&ssl_cert_reqs=required", "rediss://rhost:6379/0?ssl_cert_reqs=required"),
        ("mapreduce-redis://:pw@rhost/1?db=4", "redis://:pw@rhost:6379/4"),  # extra db wins
        ("nats://TOKEN@nhost:4333", "nats://TOKEN@nhost:4333"),
        ("mapreduce-nats://nhost?tls=false", "nats://nhost:4222"),
    ],
)  # fmt: skip
def test_queue_url_from_the_connection(
    monkeypatch: pytest.MonkeyPatch, conn: dict[str, object] | str, expected: str
) -> None:
    assert url(monkeypatch, conn) == expected


@pytest.mark.parametrize(
    ("conn", "message"),
    [
        ({"conn_type": "http", "host": "x"}, r"must be of type mapreduce_redis \(or redis\)"),
        ({"conn_type": "mapreduce_redis", "extra": {"db": "one"}}, "must be a number from 0"),
        ({"conn_type": "mapreduce_redis", "extra": {"db": -1}}, "must be a number from 0"),
        ({"conn_type": "mapreduce_redis", "extra": {"ssl": "maybe"}}, "'ssl' must be true or"),
        ({"conn_type": "mapreduce_nats", "login": "u", "password": "a/b"}, "without decoding"),
        ({"conn_type": "mapreduce_nats", "password": "to:ken"}, "without decoding"),
    ],
)
def test_unusable_connections_are_refused_saying_why(
    monkeypatch: pytest.MonkeyPatch, conn: dict[str, object], message: str
) -> None:
    with pytest.raises(QueueError, match=message) as refused:
        url(monkeypatch, conn)
    assert "a/b" not in str(refused.value) and "to:ken" not in str(refused.value)


def test_the_connection_types_hook_is_the_registered_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import BaseHook

    monkeypatch.setenv("AIRFLOW_CONN_Q", json.dumps({"conn_type": "mapreduce_nats"}))
    hook = BaseHook.get_hook("q")
    assert type(hook) is NatsQueueHook and hook.queue_conn_id == "q"
    assert hook.get_url() == "nats://127.0.0.1:4222"


@pytest.mark.integration
def test_the_test_button_reaches_the_servers(  # type: ignore[no-untyped-def]
    monkeypatch, redis_with_password: QueueServer, nats_server: QueueServer
) -> None:
    redis = {"conn_type": "mapreduce_redis", "host": "127.0.0.1", "port": redis_with_password.port}
    for conn, works in [
        ({**redis, "password": redis_with_password.password}, True),
        ({**redis, "password": "wrong"}, False),
        ({"conn_type": "mapreduce_nats", "host": "127.0.0.1", "port": nats_server.port}, True),
        ({"conn_type": "mapreduce_nats", "host": "127.0.0.1", "port": free_port()}, False),
    ]:
        monkeypatch.setenv("AIRFLOW_CONN_Q", json.dumps(conn))
        ok, message = WorkQueueHook("q").test_connection()
        assert ok is works, message
        assert redis_with_password.password not in message


def test_provider_info_registers_the_connection_types_hooks_and_triggers() -> None:
    import inspect

    import jsonschema
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    from airflow_mapreduce.get_provider_info import get_provider_info

    info = get_provider_info()
    schema = Path(inspect.getfile(ProvidersManager)).with_name("provider_info.schema.json")
    jsonschema.validate(info, json.loads(schema.read_text()))  # what Airflow checks it with
    for hook in (RedisQueueHook, NatsQueueHook):
        registered = ProvidersManagerTaskRuntime().hooks[hook.conn_type]
        assert registered is not None
        assert registered.hook_class_name == f"{hook.__module__}.{hook.__qualname__}"
        assert registered.connection_id_attribute_name == "queue_conn_id"
        assert registered.connection_testable
    manager = ProvidersManager()  # the API server's: the Connections form
    widgets = manager.connection_form_widgets
    assert {"extra__mapreduce_redis__db", "extra__mapreduce_redis__ssl"} <= set(widgets)
    assert "extra__mapreduce_nats__tls" in widgets
    assert manager.field_behaviours["mapreduce_redis"]["hidden_fields"] == ["schema"]
    assert "airflow_mapreduce.triggers.work_queue" in {
        module for t in info["triggers"] for module in t["python-modules"]
    }
