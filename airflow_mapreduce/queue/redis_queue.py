"""Redis backend: a list of ready items plus sorted sets for leases and delayed retries.

Every state change is one Lua script, so it is atomic and survives a server restart with
AOF (`appendonly yes`). Keys share one hash tag (`{name}`), so a Redis Cluster keeps a
queue on one slot. Time comes from the server (TIME), never from worker clocks.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from airflow_mapreduce.queue.base import DeadLetter, Delivery, Progress, QueueError, QueuePolicy

_PRELUDE = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cfg = redis.call('HMGET', KEYS[7], 'max_attempts', 'visibility', 'backoff', 'max_backoff')
local max_attempts = tonumber(cfg[1]) or 3
local visibility = tonumber(cfg[2]) or 300
-- A delivery is (item, attempt number): valid while leased and not handed out again.
local function valid(id, attempt)
  return redis.call('ZSCORE', KEYS[3], id) and redis.call('HGET', KEYS[5], id) == attempt
end
"""
# KEYS (every script gets all nine, in this order):
#   1 ready, 2 delayed, 3 leases, 4 all, 5 attempts, 6 dead, 7 config, 8 done, 9 stats.

_ENQUEUE = """
local new = 0
for i = 1, #ARGV do
  if redis.call('SADD', KEYS[4], ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[1], ARGV[i])
    new = new + 1
  end
end
return new
"""

_TAKE = (
    _PRELUDE
    + """
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('RPUSH', KEYS[1], id)
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[3], id)
  local n = tonumber(redis.call('HGET', KEYS[5], id) or '0')
  if n >= max_attempts then
    redis.call('HSET', KEYS[6], id, cjson.encode({attempts = n,
      error = 'not acknowledged within the visibility timeout (' .. visibility ..
              ' s) on any of ' .. n .. ' deliveries: the worker died or hung'}))
  else
    redis.call('LPUSH', KEYS[1], id)
  end
end
local ids = redis.call('LPOP', KEYS[1], tonumber(ARGV[1]))
if not ids then return {} end
local out, leases = {}, {}
for _, id in ipairs(ids) do
  local n = redis.call('HINCRBY', KEYS[5], id, 1)
  if n > 1 then redis.call('HINCRBY', KEYS[9], 'retried', 1) end
  leases[#leases + 1] = now + visibility
  leases[#leases + 1] = id
  out[#out + 1] = id
  out[#out + 1] = n
end
redis.call('ZADD', KEYS[3], unpack(leases))
out[#out + 1] = tostring(visibility)
return out
"""
)

_ACK = (
    _PRELUDE
    + """
local acked = 0
for i = 1, #ARGV, 2 do
  if valid(ARGV[i], ARGV[i + 1]) then
    redis.call('ZREM', KEYS[3], ARGV[i])
    redis.call('SADD', KEYS[8], ARGV[i])
    acked = acked + 1
  end
end
return acked
"""
)

_NACK = (
    _PRELUDE
    + """
if not valid(ARGV[1], ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[3], ARGV[1])
local n = tonumber(ARGV[2])
if n >= max_attempts then
  redis.call('HSET', KEYS[6], ARGV[1], cjson.encode({attempts = n, error = ARGV[3]}))
  return 2
end
local delay = math.min(tonumber(cfg[4]) or 60, (tonumber(cfg[3]) or 1) * 2 ^ (n - 1))
redis.call('ZADD', KEYS[2], now + delay, ARGV[1])
return 1
"""
)

_EXTEND = (
    _PRELUDE
    + """
if not valid(ARGV[1], ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[3], 'XX', now + visibility, ARGV[1])
return 1
"""
)

_KEY_NAMES = ("ready", "delayed", "leases", "all", "attempts", "dead", "config", "done", "stats")


def _refused_credentials() -> tuple[type[Exception], ...]:
    """Errors of a wrong password or user; redis-py makes them ConnectionErrors."""
    from redis.exceptions import AuthenticationError, AuthorizationError

    return AuthenticationError, AuthorizationError


@functools.cache  # redis is an optional extra: the class is built on first use
def _reconnecting_retry() -> type[Any]:
    from redis.retry import Retry

    refused = _refused_credentials()

    class ReconnectingRetry(Retry):
        """Retries lost connections, not refused credentials: redis-py's
        AuthenticationError is a ConnectionError, and 40 retries of a wrong password kept
        every worker (and a Job's replacement pods) busy for ~40 s before it failed."""

        def call_with_retry(
            self,
            do: Callable[[], Any],
            fail: Callable[..., Any],
            is_retryable: Callable[[Exception], bool] | None = None,
            with_failure_count: bool = False,
        ) -> Any:
            def retryable(error: Exception) -> bool:
                if isinstance(error, refused):
                    return False
                return is_retryable(error) if is_retryable else True

            return super().call_with_retry(do, fail, retryable, with_failure_count)

    return ReconnectingRetry


class RedisWorkQueue:
    def __init__(self, url: str, name: str) -> None:
        import redis
        from redis.backoff import ExponentialBackoff

        # Reconnect through a server restart (~30 s of retries) instead of failing the worker.
        self._redis = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=30,
            socket_connect_timeout=5,
            retry=_reconnecting_retry()(ExponentialBackoff(cap=1.0, base=0.05), retries=40),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        )
        self.name = name
        self._keys = [f"amr:{{{name}}}:{k}" for k in _KEY_NAMES]
        self._enqueue = self._redis.register_script(_ENQUEUE)
        self._take = self._redis.register_script(_TAKE)
        self._ack = self._redis.register_script(_ACK)
        self._nack = self._redis.register_script(_NACK)
        self._extend = self._redis.register_script(_EXTEND)

    def _key(self, name: str) -> str:
        return self._keys[_KEY_NAMES.index(name)]

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Every Redis error, as a QueueError naming the queue."""
        import redis

        try:
            yield
        except _refused_credentials() as exc:
            raise QueueError(
                f"Redis queue {self.name}: the server refused the queue URL's credentials "
                f"({exc}). Check the password in the Airflow connection queue.conn_id and, "
                "for pods, in the Kubernetes Secret queue.secret (key url)."
            ) from exc
        except redis.RedisError as exc:
            raise QueueError(f"Redis queue {self.name}: {exc}") from exc

    def _call(self, script: Any, args: list[Any]) -> Any:
        with self._errors():
            return script(keys=self._keys, args=args)

    def enqueue(self, items: list[str], policy: QueuePolicy) -> int:
        with self._errors():
            self._redis.hset(
                self._key("config"),
                mapping={
                    "max_attempts": policy.max_attempts,
                    "visibility": policy.visibility_timeout_seconds,
                    "backoff": policy.backoff_seconds,
                    "max_backoff": policy.max_backoff_seconds,
                },
            )
        new = 0
        for start in range(0, len(items), 1000):
            new += int(self._call(self._enqueue, items[start : start + 1000]))
        return new

    def take(self, count: int = 1, wait: float = 0.5) -> list[Delivery]:
        # Lua cannot block, so an empty queue is polled with growing pauses: 5 ms at
        # first (dispatch latency), up to 100 ms (load from many idle workers).
        deadline = time.monotonic() + wait
        pause = 0.005
        while True:
            flat = self._call(self._take, [count])
            if flat:
                visibility = float(flat[-1])
                return [
                    Delivery(flat[i], int(flat[i + 1]), str(flat[i + 1]), visibility)
                    for i in range(0, len(flat) - 1, 2)
                ]
            if time.monotonic() + pause > deadline:
                return []
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def ack(self, delivery: Delivery) -> bool:
        return bool(self._call(self._ack, [delivery.item, delivery.token]))

    def ack_many(self, deliveries: list[Delivery]) -> int:
        """Ack a batch in one round trip (the benchmark's consumers use it)."""
        args = [value for d in deliveries for value in (d.item, d.token)]
        return int(self._call(self._ack, args)) if args else 0

    def nack(self, delivery: Delivery, error: str) -> bool:
        return bool(self._call(self._nack, [delivery.item, delivery.token, error[-4000:]]))

    def extend(self, delivery: Delivery) -> bool:
        return bool(self._call(self._extend, [delivery.item, delivery.token]))

    def progress(self) -> Progress:
        pipe = self._redis.pipeline(transaction=False)
        pipe.scard(self._key("all"))
        pipe.scard(self._key("done"))
        pipe.zcard(self._key("leases"))
        pipe.llen(self._key("ready"))
        pipe.zcard(self._key("delayed"))
        pipe.hget(self._key("stats"), "retried")
        pipe.hlen(self._key("dead"))
        with self._errors():
            total, done, leased, ready, delayed, retried, dead = pipe.execute()
        return Progress(
            total=total,
            done=done,
            in_flight=leased,
            queued=ready + delayed,
            retried=int(retried or 0),
            dead=dead,
        )

    def dead_letters(self) -> list[DeadLetter]:
        letters = []
        with self._errors():
            dead = self._redis.hgetall(self._key("dead"))
        for item, raw in sorted(dead.items()):
            record = json.loads(raw)
            letters.append(DeadLetter(str(item), int(record["attempts"]), str(record["error"])))
        return letters

    def purge(self) -> None:
        with self._errors():
            self._redis.delete(*self._keys)

    def close(self) -> None:
        self._redis.close()
