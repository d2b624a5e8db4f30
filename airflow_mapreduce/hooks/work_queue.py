"""The work-queue connection: the queue URL from an Airflow connection's fields.

Two connection types, so that the Connections form offers each with its own fields
(get_provider_info declares them): ``mapreduce_redis`` (host, port, username, password,
extras ``db``, ``ssl``, ``ssl_*``) and ``mapreduce_nats`` (host, port, user and password
or a token, extra ``tls``). The bare types ``redis`` (the Redis provider's, whose fields
are the same) and ``nats`` are read alike: they are what a connection URI such as
``AIRFLOW_CONN_MAPREDUCE_QUEUE=redis://:pw@host:6379/0`` gives.

A queue URL holds the password: hand it to a queue client or to a worker's environment
only, never to logs, XCom, templates or trigger arguments.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlencode

from airflow.sdk import BaseHook

from airflow_mapreduce.queue.base import QueueError

if TYPE_CHECKING:
    from airflow.sdk import Connection

# Passed through as URL query arguments, which redis-py hands to its SSL connection.
REDIS_TLS_EXTRAS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
# nats-py takes the user, password or token from the URL as they are, without
# percent-decoding them, so these characters cannot be sent at all.
_NATS_UNSENDABLE = "/?#"


class WorkQueueHook(BaseHook):
    """The queue of a work-queue connection of any supported type.

    :param queue_conn_id: an Airflow connection of type mapreduce_redis (or redis) or
        mapreduce_nats (or nats).
    """

    conn_name_attr = "queue_conn_id"
    default_conn_name = "mapreduce_queue"
    # The types read by this class (the first is the one it registers), per subclass.
    conn_types: ClassVar[tuple[str, ...]] = ()

    def __init__(self, queue_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.queue_conn_id = queue_conn_id

    @classmethod
    def url_of(cls, conn: Connection) -> str:
        """The queue URL the connection describes, for any supported connection type."""
        conn_type = (conn.conn_type or "").lower()
        for hook in (RedisQueueHook, NatsQueueHook):
            if conn_type in hook.conn_types:
                return hook.build_url(conn)
        raise QueueError(
            f"Airflow connection {conn.conn_id!r} has conn_type {conn.conn_type!r}; a "
            "work-queue connection must be of type mapreduce_redis (or redis) or "
            "mapreduce_nats (or nats)"
        )

    def get_url(self) -> str:
        return self.url_of(self.get_connection(self.queue_conn_id))

    async def aget_url(self) -> str:
        """get_url for async code (a trigger): does not block the event loop."""
        return self.url_of(await self.aget_connection(self.queue_conn_id))

    def test_connection(self) -> tuple[bool, str]:
        """The Connections form's Test button: can the server be reached and logged in to?"""
        try:
            url = self.get_url()
            if url.startswith(("redis", "unix")):
                import redis

                with redis.Redis.from_url(url, socket_connect_timeout=5) as client:
                    client.ping()
            else:
                asyncio.run(_nats_ping(url))
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return True, "Connection successfully tested"


class RedisQueueHook(WorkQueueHook):
    """A work queue on Redis."""

    conn_type = "mapreduce_redis"
    hook_name = "MapReduce work queue (Redis)"
    conn_types = ("mapreduce_redis", "redis")

    @staticmethod
    def build_url(conn: Connection) -> str:
        extra = conn.extra_dejson
        tls = _flag(conn, extra, "ssl")
        password = quote(conn.password or "", safe="")
        user = quote(conn.login or "", safe="")
        auth = f"{user}:{password}@" if password else ""
        # extra db as the Redis provider keeps it; else the path of a redis://host/2 URI.
        db = _database(conn, extra.get("db", conn.schema or 0))
        query = {key: str(extra[key]) for key in REDIS_TLS_EXTRAS if tls and extra.get(key)}
        url = f"{'rediss' if tls else 'redis'}://{auth}{_host(conn)}:{conn.port or 6379}/{db}"
        return f"{url}?{urlencode(query)}" if query else url


class NatsQueueHook(WorkQueueHook):
    """A work queue on NATS JetStream."""

    conn_type = "mapreduce_nats"
    hook_name = "MapReduce work queue (NATS JetStream)"
    conn_types = ("mapreduce_nats", "nats")

    @staticmethod
    def build_url(conn: Connection) -> str:
        user, password = conn.login or "", conn.password or ""
        # user:password@, or token@: a login or a password alone is a NATS token, as in
        # nats://TOKEN@host (nats-py sends a user without a password as the token).
        token = user or password
        if any(c in _NATS_UNSENDABLE for c in user + password) or ":" in (user or token):
            raise QueueError(
                f"Airflow connection {conn.conn_id!r}: the NATS client reads the user, "
                "password or token from the URL without decoding them, so they cannot "
                f"contain any of {_NATS_UNSENDABLE!r}, nor the user or a token ':'; choose "
                "credentials without them"
            )
        auth = f"{user}:{password}@" if user and password else (f"{token}@" if token else "")
        scheme = "tls" if _flag(conn, conn.extra_dejson, "tls") else "nats"
        return f"{scheme}://{auth}{_host(conn)}:{conn.port or 4222}"


def _host(conn: Connection) -> str:
    host = conn.host or "127.0.0.1"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host  # IPv6


def _flag(conn: Connection, extra: dict[str, Any], key: str) -> bool:
    """A boolean extra: JSON true/false from the form, or a string from a URI's query."""
    value = extra.get(key, False)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", "", "none"):
        return False
    raise QueueError(
        f"Airflow connection {conn.conn_id!r}: extra {key!r} must be true or false, found {value!r}"
    )


def _database(conn: Connection, value: object) -> int:
    try:
        db = int(str(value))
    except ValueError:
        db = -1
    if db < 0:
        raise QueueError(
            f"Airflow connection {conn.conn_id!r}: the Redis database (extra 'db') must be a "
            f"number from 0, found {value!r}"
        )
    return db


async def _nats_ping(url: str) -> None:
    import nats

    # nats-py retries even the first connect max_reconnect_attempts times (default 60).
    client = await nats.connect(
        url, connect_timeout=5, max_reconnect_attempts=1, reconnect_time_wait=0.5
    )
    try:
        await client.flush(timeout=5)
    finally:
        await client.close()
