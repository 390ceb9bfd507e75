"""Request ids, structured (JSON) logs and Prometheus metrics."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response
from prometheus_client import CollectorRegistry, Gauge, Histogram

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


def request_middleware(
    telemetry: Telemetry,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    async def middleware(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        incoming = request.headers.get("x-request-id", "")
        request_id = (
            incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        )
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers["X-Request-ID"] = request_id
            return response
        finally:
            elapsed = time.perf_counter() - started
            route = request.scope.get("route")
            route_path = getattr(route, "path", "unmatched")
            telemetry.latency.labels(request.method, route_path, str(status)).observe(elapsed)
            access_logger.info(
                "request",
                extra={
                    "fields": {
                        "method": request.method,
                        "path": request.url.path,
                        "route": route_path,
                        "status": status,
                        "ms": round(elapsed * 1000, 2),
                    }
                },
            )
            request_id_var.reset(token)

    return middleware
