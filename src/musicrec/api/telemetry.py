"""Request ids, structured (JSON) logs and Prometheus metrics."""

from __future__ import annotations

import json
import logging
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from musicrec.api.deps import AppState

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
access_logger = logging.getLogger("musicrec.access")
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request id of the request being served."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": request_id_var.get(),
        }
        payload.update(getattr(record, "fields", {}))
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


def configure_logging(level: str, log_file: Path | None) -> None:
    """JSON logs on stderr, and in ``log_file`` when set (the directory is created)."""
    logger = logging.getLogger("musicrec")
    logger.setLevel(level.upper())
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.propagate = False


@dataclass
class Telemetry:
    """The app's own metric registry (one per app, so tests can run several apps)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.latency = Histogram(
            "musicrec_request_seconds",
            "Request latency by route",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.jobs = Gauge("musicrec_jobs", "Jobs by status", ["status"], registry=self.registry)
        self.active = Gauge(
            "musicrec_active_model",
            "1 for the model /predict serves",
            ["model_id"],
            registry=self.registry,
        )


def refresh_gauges(state: AppState) -> None:
    telemetry = state.telemetry
    for status, count in state.store.jobs.counts_by_status().items():
        telemetry.jobs.labels(status=status).set(count)
    telemetry.active.clear()
    served = state.service.current
    if served is not None:
        telemetry.active.labels(model_id=served.model_id).set(1)


class RequestTelemetryMiddleware:
    """Pure ASGI middleware: request id, latency histogram per route, one access log line.

    Pure ASGI rather than ``@app.middleware("http")``: the latter's streaming wrapper costs
    more per request than a precomputed /predict answer does.
    """

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = (
            incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        )
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            # The router records the matched route in the scope before the endpoint runs.
            route_path = str(getattr(scope.get("route"), "path", "unmatched"))
            method = str(scope.get("method", ""))
            self.telemetry.latency.labels(method, route_path, str(status)).observe(elapsed)
            access_logger.info(
                "request",
                extra={
                    "fields": {
                        "method": method,
                        "path": scope.get("path", ""),
                        "route": route_path,
                        "status": status,
                        "ms": round(elapsed * 1000, 2),
                    }
                },
            )
            request_id_var.reset(token)
