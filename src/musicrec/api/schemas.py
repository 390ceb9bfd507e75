"""Request and response bodies, one family per resource."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from musicrec.data.encoding import CONFIDENCE_SCHEMES, DEFAULT_CONFIDENCE
from musicrec.models.als import DEFAULT_ALS_PARAMS


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FitRequest(Strict):
    """Train a model as a background job. Omitted hyper-parameters take the measured defaults."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "model_name": "als-spec",
                    "model_type": "ALS",
                    "factors": 50,
                    "iterations": 10,
                    "regularization": 0.01,
                    "alpha": 0.01,
                },
                {"model_name": "als-default", "model_type": "ALS", "dataset": "kkbox-sample"},
            ]
        },
    )
    model_name: str = Field(min_length=1, max_length=200)
    model_type: Literal["ALS", "als", "popularity", "POPULARITY"] = "ALS"
    factors: int = Field(default=DEFAULT_ALS_PARAMS["factors"], ge=1, le=1024)
    iterations: int = Field(default=DEFAULT_ALS_PARAMS["iterations"], ge=1, le=1000)
    regularization: float = Field(default=DEFAULT_ALS_PARAMS["regularization"], ge=0, le=1e6)
    alpha: float = Field(default=DEFAULT_ALS_PARAMS["alpha"], ge=0, le=1e6)
    seed: int = Field(default=DEFAULT_ALS_PARAMS["seed"], ge=0, le=2**31 - 1)
    confidence: str = Field(
        default=DEFAULT_CONFIDENCE, description="all-listens | weighted | positives"
    )
    dataset: str | None = Field(
        default=None, description="Dataset name; default: the bundled sample."
    )
    evaluate: bool = Field(
        default=True, description="Also report holdout metrics (about 2x the time)."
    )

    @field_validator("confidence")
    @classmethod
    def known_confidence(cls, value: str) -> str:
        if value not in CONFIDENCE_SCHEMES:
            raise ValueError(f"use one of {', '.join(CONFIDENCE_SCHEMES)}")
        return value


class FitAccepted(BaseModel):
    status: Literal["training_started"] = "training_started"
    model_id: str
    job_id: str
    warnings: list[str] = []


class FederateRequest(Strict):
    """Federated fine-tuning of the active model (or from scratch) on Flower's simulation."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"rounds": 20, "clients": 10},
                {
                    "model_name": "federated-dp",
                    "partition": "silo:20",
                    "rounds": 10,
                    "clients_per_round": 10,
                    "dp_epsilon": 8.0,
                },
                {"rounds": 5, "clients": 10, "aggregation": "median", "from_scratch": True},
            ]
        },
    )
    model_name: str | None = Field(default=None, min_length=1, max_length=200)
    dataset: str | None = Field(default=None, description="Dataset the clients split.")
    base_model_id: str | None = Field(
        default=None, max_length=80, description="Model to fine-tune; default: the active one."
    )
    from_scratch: bool = Field(default=False, description="Start from random song factors.")
    clients: int | None = Field(default=None, ge=1, le=100_000, description="Same as silo:N.")
    partition: str | None = Field(
        default=None, max_length=40, description="'user' or 'silo:N'; default silo:10."
    )
    rounds: int = Field(default=20, ge=1, le=1000)
    clients_per_round: int = Field(default=0, ge=0, le=100_000, description="0 = all.")
    dp_epsilon: float = Field(default=0.0, ge=0, le=1e6, description="0 = no DP.")
    secagg: bool = False
    aggregation: Literal["mean", "clip", "trimmed-mean", "median"] = "mean"
    learning_rate: float = Field(default=0.01, gt=0, le=10)
    max_upload_bytes: int = Field(default=1_000_000, ge=1024, le=1_000_000_000)
    seed: int = Field(default=42, ge=0, le=2**31 - 1)


class FederateAccepted(BaseModel):
    status: Literal["federation_started"] = "federation_started"
    job_id: str
    model_id: str
    parent_id: str | None
    warnings: list[str] = Field(
        default=[], description="Shown at once, e.g. a DP budget whose noise will swamp the run."
    )


class ModelPublic(BaseModel):
    model_id: str
    created_at: datetime
    finished_at: datetime | None
    name: str
    type: str
    status: str
    params: dict[str, Any]
    metrics: dict[str, Any] | None
    info: dict[str, Any] | None
    error: str | None
    is_active: bool
    parent_id: str | None


class SetActiveResponse(BaseModel):
    status: Literal["active_model_updated"] = "active_model_updated"
    model_id: str


class JobPublic(BaseModel):
    job_id: str
    kind: str
    status: str
    progress: float
    message: str | None
    error: str | None
    model_id: str | None
    params: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class SongItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    song_id: str
    score: float


class PredictResponse(BaseModel):
    recommendations: list[str]
    model_id: str
    cold_start: bool
    user_id: int | None = None
    msno: str | None = None
    items: list[SongItem] | None = None


class HistoryRequest(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"songs": ["BBzumQNXUHKdEBOB7mAJuzok+IJA1c2Ryg/yzTF6tik="], "n": 10}]
        },
    )
    songs: list[str] = Field(min_length=1, max_length=10_000)
    n: int = Field(default=10, ge=1, le=1000)
    filter_heard: bool = True
    details: bool = False


class HistoryResponse(BaseModel):
    recommendations: list[str]
    model_id: str
    cold_start: bool
    unknown_songs: list[str]
    items: list[SongItem] | None = None


class UserPublic(BaseModel):
    user_id: int
    msno: str


class UsersPublic(BaseModel):
    data: list[UserPublic]
    count: int


class DatasetPublic(BaseModel):
    name: str
    source: str
    rows: int
    users: int
    songs: int
    fingerprint: str
    created_at: str
    updated_at: str


class InteractionEvent(Strict):
    msno: str = Field(min_length=1, max_length=200)
    song_id: str = Field(min_length=1, max_length=200)
    source_system_tab: str | None = Field(default=None, max_length=200)
    source_screen_name: str | None = Field(default=None, max_length=200)
    source_type: str | None = Field(default=None, max_length=200)
    target: Literal[0, 1]

    @field_validator("msno", "song_id")
    @classmethod
    def not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class InteractionsRequest(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "dataset": "kkbox-sample",
                    "events": [
                        {
                            "msno": "new-listener",
                            "song_id": "BBzumQNXUHKdEBOB7mAJuzok+IJA1c2Ryg/yzTF6tik=",
                            "source_system_tab": "discover",
                            "target": 1,
                        }
                    ],
                }
            ]
        },
    )
    dataset: str = Field(default="kkbox-sample", min_length=1, max_length=200)
    events: list[InteractionEvent] = Field(min_length=1, max_length=100_000)


class InteractionsAccepted(BaseModel):
    dataset: str
    appended: int
    rows: int


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded"]
    database: bool
    active_model: str | None
    precomputed_lists: bool = Field(
        default=False, description="The active model's top-N lists are ready (fast path)."
    )
    jobs: dict[str, int]
    version: str


class ErrorBody(BaseModel):
    detail: str


class ValidationErrorBody(BaseModel):
    detail: str
    errors: list[dict[str, Any]] = []


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error codes a route can answer."""
    described = {
        401: "missing or wrong X-API-Key",
        404: "not found",
        409: "conflict with the current state",
        413: "upload too large",
        422: "invalid input",
        503: "no active model",
    }
    return {
        code: {
            "model": ValidationErrorBody if code == 422 else ErrorBody,
            "description": described[code],
        }
        for code in codes
    }
