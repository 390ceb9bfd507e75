"""/fit, /models, /set, /jobs: training as background jobs and the model registry."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, status

from musicrec.api.actions import activate_model
from musicrec.api.deps import ApiKeyDep, AppState, StateDep
from musicrec.api.schemas import (
    FederateAccepted,
    FederateRequest,
    FitAccepted,
    FitRequest,
    JobPublic,
    ModelPublic,
    SetActiveResponse,
    error_responses,
)
from musicrec.errors import InvalidParameterError
from musicrec.models.als import ALSRecommender
from musicrec.store.jobs import JobRecord
from musicrec.store.registry import ModelRecord

router = APIRouter(tags=["models"], responses=error_responses(404, 409, 422))
AUTH = error_responses(401)
SAMPLE_DATASET = "kkbox-sample"


def model_public(record: ModelRecord) -> ModelPublic:
    return ModelPublic(
        model_id=record.id,
        created_at=record.created_at,
        finished_at=record.finished_at,
        name=record.name,
        type=record.type,
        status=record.status,
        params=record.params,
        metrics=record.metrics,
        info=record.info,
        error=record.error,
        is_active=record.is_active,
        parent_id=record.parent_id,
    )


def job_public(job: JobRecord) -> JobPublic:
    return JobPublic(
        job_id=job.id,
        kind=job.kind,
        status=job.status,
        progress=job.progress,
        message=job.message,
        error=job.error,
        model_id=job.model_id,
        params=job.params,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


@router.post(
    "/fit",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=FitAccepted,
    dependencies=[ApiKeyDep],
    responses=AUTH,
)
def fit(body: FitRequest, state: AppState = StateDep) -> FitAccepted:
    """Start training a model on a dataset; poll `GET /jobs/{job_id}` for progress."""
    model_type = body.model_type.lower()
    params: dict[str, Any] = (
        {
            "factors": body.factors,
            "iterations": body.iterations,
            "regularization": body.regularization,
            "alpha": body.alpha,
            "seed": body.seed,
        }
        if model_type == "als"
        else {}
    )
    job, model = state.runner.submit_train(
        dataset=body.dataset or SAMPLE_DATASET,
        name=body.model_name,
        model_type=model_type,
        model_params=params,
        confidence=body.confidence,
        evaluate=body.evaluate,
    )
    warnings = ALSRecommender(**params).warnings() if model_type == "als" else []
    return FitAccepted(model_id=model.id, job_id=job.id, warnings=warnings)


@router.post(
    "/federate",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=FederateAccepted,
    dependencies=[ApiKeyDep],
    responses=AUTH,
)
def federate(body: FederateRequest, state: AppState = StateDep) -> FederateAccepted:
    """Start a federated fine-tuning run of the active model (Flower simulation) as a job.

    The new model appears in `GET /models` with `parent_id` = the base model; its metrics
    hold the per-round curve (`rounds`) and the privacy figures (`privacy`).
    """
    if body.clients is not None and body.partition is not None:
        raise InvalidParameterError("give clients or partition, not both")
    partition = body.partition or f"silo:{body.clients or 10}"
    base = None
    if not body.from_scratch:
        base = body.base_model_id or state.store.registry.active_id()
        if base is None:
            raise InvalidParameterError(
                "no active model to fine-tune: set one with /set, give base_model_id, "
                "or pass from_scratch=true"
            )
    elif body.base_model_id:
        raise InvalidParameterError("give base_model_id or from_scratch, not both")
    config = {
        "seed": body.seed,
        "rounds": body.rounds,
        "clients_per_round": body.clients_per_round,
        "dp_epsilon": body.dp_epsilon,
        "secagg": body.secagg,
        "aggregation": body.aggregation,
        "learning_rate": body.learning_rate,
        "max_upload_bytes": body.max_upload_bytes,
    }
    dataset = body.dataset or _base_dataset(state, base) or SAMPLE_DATASET
    job, model, warnings = state.runner.submit_federate(
        dataset=dataset,
        name=body.model_name or f"federated-{base or 'scratch'}",
        config=config,
        partition=partition,
        base_model_id=base,
    )
    return FederateAccepted(
        job_id=job.id, model_id=model.id, parent_id=model.parent_id, warnings=warnings
    )


def _base_dataset(state: AppState, base: str | None) -> str | None:
    if base is None:
        return None
    info = state.store.registry.get(base).info or {}
    dataset = info.get("dataset")
    return dataset if isinstance(dataset, str) and state.store.datasets.exists(dataset) else None


@router.get("/models", response_model=list[ModelPublic])
def list_models(state: AppState = StateDep) -> list[ModelPublic]:
    """Every model, newest first."""
    return [model_public(r) for r in state.store.registry.list_models()]


@router.get("/models/{model_id}", response_model=ModelPublic)
def get_model(model_id: str, state: AppState = StateDep) -> ModelPublic:
    return model_public(state.store.registry.get(model_id))


@router.delete("/models/{model_id}", status_code=204, dependencies=[ApiKeyDep], responses=AUTH)
def delete_model(model_id: str, state: AppState = StateDep) -> None:
    """Delete a model that is not active (and its artifact)."""
    state.store.registry.delete(model_id)


@router.post("/set", response_model=SetActiveResponse, dependencies=[ApiKeyDep], responses=AUTH)
def set_active(
    model_id: str = Query(min_length=1, max_length=80, examples=["als_20250531_153000"]),
    state: AppState = StateDep,
) -> SetActiveResponse:
    """Make a ready model the one /predict serves (persisted; atomic for requests in flight)."""
    record = activate_model(state, model_id)
    return SetActiveResponse(model_id=record.id)


@router.get("/jobs", response_model=list[JobPublic])
def list_jobs(
    limit: int = Query(default=50, ge=1, le=1000), state: AppState = StateDep
) -> list[JobPublic]:
    return [job_public(j) for j in state.store.jobs.list_jobs(limit=limit)]


@router.get("/jobs/{job_id}", response_model=JobPublic)
def get_job(job_id: str, state: AppState = StateDep) -> JobPublic:
    """Status and progress (0-1) of a training or federated job."""
    return job_public(state.store.jobs.get(job_id))


@router.post(
    "/jobs/{job_id}/cancel", response_model=JobPublic, dependencies=[ApiKeyDep], responses=AUTH
)
def cancel_job(job_id: str, state: AppState = StateDep) -> JobPublic:
    return job_public(state.runner.cancel(job_id))
