"""/datasets and /interactions: listening data in, validated, stored in the database."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow as pa
from fastapi import APIRouter, HTTPException, Query, Request, status
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from musicrec.api.deps import ApiKeyDep, AppState, StateDep
from musicrec.api.schemas import (
    DatasetPublic,
    InteractionsAccepted,
    InteractionsRequest,
    error_responses,
)
from musicrec.data.schema import CATEGORICAL_COLUMNS, UNKNOWN
from musicrec.errors import DataValidationError
from musicrec.store.datasets import check_dataset_name

router = APIRouter(tags=["datasets"], responses=error_responses(404, 409, 422))
AUTH = error_responses(401, 413)
_CHUNK = 1 << 20

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "The CSV or Parquet file as the raw body, or multipart field `file`.",
        "content": {
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


def _too_large(limit: int) -> HTTPException:
    return HTTPException(status_code=413, detail=f"upload larger than the limit of {limit} bytes")


async def _save_upload(request: Request, destination: Path, limit: int) -> None:
    """Stream the body (raw, or the multipart field `file`) to ``destination``, bounded."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise _too_large(limit)
    content_type = request.headers.get("content-type", "")
    written = 0
    with open(destination, "wb") as out:
        if content_type.startswith("multipart/form-data"):
            try:
                form = await request.form(max_files=1, max_fields=5)
            except StarletteHTTPException as exc:  # starlette's multipart parser says 400
                raise HTTPException(
                    status_code=422, detail=f"malformed multipart upload: {exc.detail}"
                ) from None
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise HTTPException(status_code=422, detail="multipart upload needs a field 'file'")
            while block := await upload.read(_CHUNK):
                written += len(block)
                if written > limit:
                    raise _too_large(limit)
                out.write(block)
        else:
            async for block in request.stream():
                written += len(block)
                if written > limit:
                    raise _too_large(limit)
                out.write(block)
    if written == 0:
        raise HTTPException(status_code=422, detail="the upload is empty")


@router.post(
    "/datasets",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetPublic,
    dependencies=[ApiKeyDep],
    responses=AUTH,
    openapi_extra=_UPLOAD_BODY,
)
async def upload_dataset(
    request: Request,
    name: str = Query(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        examples=["my-listens"],
    ),
    state: AppState = StateDep,
) -> DatasetPublic:
    """Upload a KKBox-schema CSV/Parquet; it is validated and stored as dataset `name`."""
    check_dataset_name(name)
    if await run_in_threadpool(state.store.datasets.exists, name):
        raise HTTPException(status_code=409, detail=f"dataset {name!r} already exists")
    uploads = state.settings.artifact_dir.parent / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    # The client's file name never becomes a path: the server picks the name.
    fd, tmp_name = tempfile.mkstemp(prefix="upload-", suffix=".data", dir=uploads)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        await _save_upload(request, tmp, state.settings.max_upload_bytes)
        try:
            info = await run_in_threadpool(state.store.datasets.import_file, name, tmp)
        except DataValidationError as exc:
            # Name the upload, not the server's temporary path.
            raise DataValidationError(str(exc).replace(str(tmp), "uploaded file")) from None
    finally:
        tmp.unlink(missing_ok=True)
    return DatasetPublic(**{**info.public(), "source": "upload"})


@router.get("/datasets", response_model=list[DatasetPublic])
def list_datasets(state: AppState = StateDep) -> list[DatasetPublic]:
    return [DatasetPublic(**d.public()) for d in state.store.datasets.list_datasets()]


@router.get("/datasets/{name}", response_model=DatasetPublic)
def get_dataset(name: str, state: AppState = StateDep) -> DatasetPublic:
    return DatasetPublic(**state.store.datasets.get(name).public())


@router.post(
    "/interactions",
    status_code=status.HTTP_201_CREATED,
    response_model=InteractionsAccepted,
    dependencies=[ApiKeyDep],
    responses=AUTH,
)
def append_interactions(
    body: InteractionsRequest, state: AppState = StateDep
) -> InteractionsAccepted:
    """Append listening events (the music player's log) to a dataset for the next training."""
    columns: dict[str, pa.Array] = {
        "msno": pa.array([e.msno for e in body.events], pa.string()),
        "song_id": pa.array([e.song_id for e in body.events], pa.string()),
    }
    for column in CATEGORICAL_COLUMNS:
        values = [getattr(e, column) for e in body.events]
        columns[column] = pa.array([v if v and v.strip() else UNKNOWN for v in values], pa.string())
    columns["target"] = pa.array([e.target for e in body.events], pa.int8())
    info = state.store.datasets.append(body.dataset, pa.table(columns))
    return InteractionsAccepted(dataset=info.name, appended=len(body.events), rows=info.rows)
