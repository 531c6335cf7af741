"""A plain ASGI middleware (no per-request task, unlike Starlette's BaseHTTPMiddleware): request
id in and out, latency histogram per route, one JSON access log line."""

from __future__ import annotations

import logging
import random
import time

from mlops.serving.logs import request_id
from mlops.serving.metrics import Metrics

access = logging.getLogger("mlops.access")
HEADER = b"x-request-id"


class RequestContext:
    def __init__(self, app, metrics: Metrics, *, log_requests: bool) -> None:
        self.app, self.metrics, self.log_requests = app, metrics, log_requests
        # Ids need to be unique, not secret: a generator seeded once from the OS per process
        # (uuid4 asked the OS for 16 random bytes per request: 8% of an ETA answer's time).
        self._ids = random.Random()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        rid = ""
        for name, value in scope["headers"]:
            if name == HEADER:
                rid = value.decode("latin-1")[:64]
                break
        rid = rid or f"{self._ids.getrandbits(128):032x}"
        token = request_id.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        status = 500

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((HEADER, rid.encode("latin-1")))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(path, scope["method"], str(status)).observe(seconds)
            if self.log_requests:
                access.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": path,
                        "status": status,
                        "ms": round(seconds * 1000, 3),
                    },
                )
            request_id.reset(token)
