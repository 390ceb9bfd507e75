"""Shared dependencies: the app state, and the API key on mutating endpoints."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from musicrec.api.telemetry import Telemetry
from musicrec.config import Settings
from musicrec.jobs import JobRunner
from musicrec.serving import RecommendationService
from musicrec.store import Store

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


@dataclass
class AppState:
    settings: Settings
    store: Store
    service: RecommendationService
    runner: JobRunner
    telemetry: Telemetry


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.musicrec
    return state


def require_api_key(request: Request, supplied: str | None = Security(api_key_header)) -> None:
    """401 unless X-API-Key matches MUSICREC_API_KEY (when one is set); constant-time compare."""
    expected = get_state(request).settings.api_key
    if expected is None:
        return
    if supplied is None or not hmac.compare_digest(
        supplied.encode("utf-8"), expected.get_secret_value().encode("utf-8")
    ):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong X-API-Key header",
            headers={"WWW-Authenticate": "APIKey"},
        )


StateDep = Depends(get_state)
ApiKeyDep = Depends(require_api_key)
