"""/predict, /recommend, /users: the serving path (in-memory model, no database per request)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from musicrec.api.deps import AppState, StateDep
from musicrec.api.schemas import (
    HistoryRequest,
    HistoryResponse,
    PredictResponse,
    SongItem,
    UserPublic,
    UsersPublic,
    error_responses,
)

router = APIRouter(tags=["recommendations"], responses=error_responses(422, 503))


async def _predict(
    state: AppState,
    user_id: int | None,
    msno: str | None,
    n: int,
    filter_heard: bool,
    details: bool,
) -> PredictResponse:
    service = state.service
    if service.answers_from_lists(n, filter_heard):
        # A lookup in the precomputed lists: microseconds, so on the event loop itself.
        result = service.for_user(n, user_index=user_id, msno=msno, filter_heard=filter_heard)
    else:  # live scoring takes milliseconds at full scale: keep it off the event loop
        result = await run_in_threadpool(
            service.for_user, n, user_index=user_id, msno=msno, filter_heard=filter_heard
        )
    items = None
    if details:
        items = [SongItem(**d) for d in service.details(result.song_ids, result.scores)]
    return PredictResponse(
        recommendations=result.song_ids,
        model_id=result.model_id,
        cold_start=result.cold_start,
        user_id=result.user_index,
        msno=result.msno if result.msno is not None else msno,
        items=items,
    )


_USER = Query(default=None, ge=0, le=2**31 - 1, description="User index as listed by /users.")
_MSNO = Query(default=None, min_length=1, max_length=200, description="Or the listener's msno.")
_N = Query(default=10, ge=1, le=1000)
_FILTER = Query(default=True, description="Leave out songs the listener already heard.")
_DETAILS = Query(default=False, description="Add scores and song metadata.")


@router.post("/predict", response_model=PredictResponse)
async def predict_post(
    user_id: int | None = _USER,
    msno: str | None = _MSNO,
    n: int = _N,
    filter_heard: bool = _FILTER,
    details: bool = _DETAILS,
    state: AppState = StateDep,
) -> PredictResponse:
    """Top-n songs for a listener; unknown listeners get the popular list (`cold_start`)."""
    return await _predict(state, user_id, msno, n, filter_heard, details)


@router.get("/predict", response_model=PredictResponse)
async def predict_get(
    user_id: int | None = _USER,
    msno: str | None = _MSNO,
    n: int = _N,
    filter_heard: bool = _FILTER,
    details: bool = _DETAILS,
    state: AppState = StateDep,
) -> PredictResponse:
    """Same as POST /predict."""
    return await _predict(state, user_id, msno, n, filter_heard, details)


@router.post("/recommend", response_model=HistoryResponse)
def recommend_for_history(body: HistoryRequest, state: AppState = StateDep) -> HistoryResponse:
    """Recommendations for a listener the model never saw, by fold-in of their songs."""
    result = state.service.for_history(body.songs, body.n, filter_heard=body.filter_heard)
    items = None
    if body.details:
        items = [SongItem(**d) for d in state.service.details(result.song_ids, result.scores)]
    return HistoryResponse(
        recommendations=result.song_ids,
        model_id=result.model_id,
        cold_start=result.cold_start,
        unknown_songs=result.unknown_songs,
        items=items,
    )


@router.get("/users", response_model=UsersPublic)
def list_users(
    limit: int = Query(default=100, ge=1, le=10_000),
    offset: int = Query(default=0, ge=0, le=2**31 - 1),
    state: AppState = StateDep,
) -> UsersPublic:
    """Listener index ↔ msno of the active model (the user_id that /predict takes)."""
    rows, total = state.service.users(limit, offset)
    return UsersPublic(data=[UserPublic(user_id=i, msno=m) for i, m in rows], count=total)


@router.get("/users/{user_id}/history", response_model=list[str])
def user_history(
    user_id: int, limit: int = Query(default=50, ge=1, le=1000), state: AppState = StateDep
) -> list[str]:
    """Songs the listener has in the active model's training data."""
    return state.service.heard_songs(user_id, limit)
