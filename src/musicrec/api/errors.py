"""Domain errors → HTTP status codes, in one table; every error answers ``{"detail": ...}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from musicrec.errors import (
    ArtifactError,
    ConflictError,
    DataValidationError,
    InvalidParameterError,
    MusicrecError,
    NotFoundError,
    UnavailableError,
)

STATUS_OF: dict[type[MusicrecError], int] = {
    NotFoundError: 404,
    ConflictError: 409,
    InvalidParameterError: 422,
    DataValidationError: 422,
    ArtifactError: 409,
    UnavailableError: 503,
}
logger = logging.getLogger("musicrec.api")


def status_for(exc: MusicrecError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 400


def _location(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MusicrecError)
    async def domain_error(_request: Request, exc: MusicrecError) -> JSONResponse:
        return JSONResponse(status_code=status_for(exc), content={"detail": str(exc)})

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        message = "; ".join(f"{_location(tuple(e['loc']))}: {e['msg']}" for e in errors[:5])
        safe = [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]} for e in errors
        ]
        return JSONResponse(status_code=422, content={"detail": message, "errors": safe})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status_code, content={"detail": exc.detail}, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            status_code=500, content={"detail": "internal error; see the server log"}
        )
