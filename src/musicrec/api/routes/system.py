"""/health and /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from musicrec import __version__
from musicrec.api.deps import AppState, StateDep
from musicrec.api.schemas import HealthResponse
from musicrec.api.telemetry import refresh_gauges

router = APIRouter(tags=["system"])


@router.get("/health", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
def health(state: AppState = StateDep) -> JSONResponse:
    """Liveness, database reachability and the active model; 503 when degraded."""
    database = state.store.ping()
    served = state.service.current
    jobs = state.store.jobs.counts_by_status() if database else {}
    ok = database and served is not None
    body = HealthResponse(
        status="ok" if ok else "degraded",
        database=database,
        active_model=served.model_id if served else None,
        precomputed_lists=bool(served and served.top.ready),
        jobs=jobs,
        version=__version__,
    )
    return JSONResponse(status_code=200 if ok else 503, content=body.model_dump())


@router.get("/metrics", response_class=Response)
def metrics(state: AppState = StateDep) -> Response:
    """Prometheus text format: request latency per route, jobs by status, active model."""
    refresh_gauges(state)
    return Response(
        content=generate_latest(state.telemetry.registry), media_type=CONTENT_TYPE_LATEST
    )
