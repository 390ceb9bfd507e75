"""The FastAPI app factory: store, job runner, active model and bootstrap in one lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from musicrec import __version__
from musicrec.api.actions import activate_model
from musicrec.api.deps import AppState
from musicrec.api.errors import install_error_handlers
from musicrec.api.routes import datasets, models, predict, system
from musicrec.api.telemetry import RequestTelemetryMiddleware, Telemetry, configure_logging
from musicrec.config import Settings, get_settings
from musicrec.data.encoding import DEFAULT_CONFIDENCE, encode_interactions
from musicrec.errors import MusicrecError
from musicrec.jobs import JobRunner
from musicrec.models.als import DEFAULT_ALS_PARAMS
from musicrec.serving import RecommendationService
from musicrec.store import Store, open_store
from musicrec.training import ModelSpec, compare_models, train_bundle

logger = logging.getLogger("musicrec.api")
SAMPLE_DATASET = models.SAMPLE_DATASET

DESCRIPTION = """Music recommendations from implicit-feedback ALS, with a popularity fallback.

Mutating endpoints need `X-API-Key` when the server has `MUSICREC_API_KEY` set.
Errors are JSON `{"detail": "..."}`."""


def bootstrap(store: Store, settings: Settings) -> str | None:
    """First start with an empty registry: import the sample, train, activate. Returns the id."""
    if store.registry.list_models():
        return None
    if not store.datasets.exists(SAMPLE_DATASET):
        store.datasets.import_file(SAMPLE_DATASET, settings.sample_data)
    info = store.datasets.get(SAMPLE_DATASET)
    data = encode_interactions(store.datasets.read_table(SAMPLE_DATASET))
    params = dict(DEFAULT_ALS_PARAMS)
    report = compare_models(
        data,
        [ModelSpec("als", "als", params)],
        seed=settings.seed,
        threads=settings.threads_per_job,
    )
    record = store.registry.create(
        "default-als",
        "als",
        params,
        dataset_id=info.id,
        info={"dataset": SAMPLE_DATASET, "bootstrap": True},
    )
    bundle = train_bundle(
        data,
        "als",
        params,
        DEFAULT_CONFIDENCE,
        fingerprint=info.fingerprint,
        threads=settings.threads_per_job,
    )
    store.registry.publish(record.id, bundle, {**report["models"]["als"], "split": report["split"]})
    store.registry.set_active(record.id)
    logger.info("bootstrap: trained and activated %s on %s", record.id, SAMPLE_DATASET)
    return record.id


def _load_active(state: AppState) -> None:
    active = state.store.registry.active_id()
    if active is None:
        return
    try:
        activate_model(state, active)
    except MusicrecError as exc:
        # The registry marked it broken; serve nothing rather than a wrong model.
        logger.error("active model %s could not be loaded: %s", active, exc)


def create_app(settings: Settings | None = None) -> FastAPI:
    """A configured app; the store opens (and migrates) when the app starts."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_file)
    telemetry = Telemetry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_store(settings.database_url, settings.artifact_dir)
        runner = JobRunner(store, settings)
        state = AppState(
            settings,
            store,
            RecommendationService(settings.songs_csv, settings.precompute_top_n),
            runner,
            telemetry,
        )
        app.state.musicrec = state
        if settings.run_jobs:
            runner.start()
        else:
            runner.recover()
        if settings.bootstrap:
            bootstrap(store, settings)
        _load_active(state)
        logger.info(
            "musicrec API ready",
            extra={"fields": {"database": store.engine.url.get_backend_name()}},
        )
        try:
            yield
        finally:
            state.service.deactivate()  # also ends a running top-list precomputation
            if settings.run_jobs:
                runner.stop()
            store.close()

    app = FastAPI(title="musicrec", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.add_middleware(RequestTelemetryMiddleware, telemetry=telemetry)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    install_error_handlers(app)
    for router in (models.router, predict.router, datasets.router, system.router):
        app.include_router(router)
    return app
