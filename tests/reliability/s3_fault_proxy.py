"""A fault-injecting reverse proxy for S3 (test only): 5xx, throttling, connection resets.

Put it between clients and the S3 server; a seeded RNG picks the faults, so a failing
run can be replayed. While the upstream server restarts, clients get 502s, which they
must retry as well.
"""

from __future__ import annotations

import asyncio
import collections
import random
import threading

import aiohttp
from aiohttp import web

from tests.servers import free_port

FAULTS = ("slow_down", "internal_error", "reset_before", "reset_after")
_ERROR_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
)
# Hop-by-hop headers and those aiohttp sets itself.
_DROP = {"host", "content-length", "transfer-encoding", "connection", "expect", "keep-alive"}


class S3FaultProxy:
    def __init__(self, upstream: str, fault_rate: float, seed: int, record: bool = False) -> None:
        self.upstream = upstream.rstrip("/")
        # Every request and response (headers and body), for tests that grep the traffic.
        self.transcript: list[bytes] | None = [] if record else None
        self.fault_rate = fault_rate
        self.rng = random.Random(seed)
        self.injected: collections.Counter[str] = collections.Counter()
        self.forwarded = 0
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def __enter__(self) -> S3FaultProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _start(self) -> None:
        # auto_decompress=False: bytes pass through exactly as the server sent them.
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()
        await self._session.close()

    def _record(self, *chunks: bytes) -> None:
        if self.transcript is not None:
            self.transcript.extend(chunks)

    def _pick_fault(self) -> str | None:
        if self.rng.random() >= self.fault_rate:
            return None
        fault = self.rng.choice(FAULTS)
        self.injected[fault] += 1
        return fault

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self._record(f"{request.method} {request.path_qs} {dict(request.headers)}".encode(), body)
        fault = self._pick_fault()
        if fault == "slow_down":
            return web.Response(status=503, text=_ERROR_XML.format(code="SlowDown"))
        if fault == "internal_error":
            return web.Response(status=500, text=_ERROR_XML.format(code="InternalError"))
        if fault == "reset_before":
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
        headers["Host"] = request.headers.get("Host", "")  # part of the SigV4 signature
        try:
            async with self._session.request(
                request.method,
                self.upstream + request.path_qs,
                headers=headers,
                data=body,
                allow_redirects=False,
            ) as upstream:
                data = await upstream.read()
                status, up_headers = upstream.status, upstream.headers
        except aiohttp.ClientError:
            return web.Response(status=502, text=_ERROR_XML.format(code="BadGateway"))
        self.forwarded += 1
        self._record(f"{status} {dict(up_headers)}".encode(), data)
        if fault == "reset_after":  # the server did it, the client never hears: retries
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        response = web.Response(status=status, body=data if request.method != "HEAD" else None)
        for key, value in up_headers.items():
            if key.lower() not in _DROP:
                response.headers.add(key, value)
        if request.method == "HEAD" and "Content-Length" in up_headers:
            response.headers["Content-Length"] = up_headers["Content-Length"]
        return response
