"""The model registry: model rows, their artifact files, and the single active-model pointer.

Invariants (a crash at any moment keeps them):
- a row points to an artifact only once the artifact directory is complete (written to a
  temporary directory, renamed, then the row updated);
- the active pointer only ever names a ``ready`` model, and a model that fails to load is
  marked ``broken`` without touching the pointer.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from musicrec.errors import ArtifactError, ConflictError, NotFoundError
from musicrec.models.artifacts import ModelBundle, load_bundle, save_bundle
from musicrec.store.db import is_sqlite
from musicrec.store.tables import active_model, as_utc, models

MODEL_STATUSES = ("queued", "training", "ready", "failed", "broken")


@dataclass
class ModelRecord:
    id: str
    name: str
    type: str
    status: str
    params: dict[str, Any]
    metrics: dict[str, Any] | None
    info: dict[str, Any] | None
    error: str | None
    dataset_id: int | None
    parent_id: str | None
    artifact_path: str | None
    artifact_sha256: str | None
    created_at: datetime
    finished_at: datetime | None
    is_active: bool = False


def _record(row: Any, active_id: str | None) -> ModelRecord:
    fields = {k: getattr(row, k) for k in ModelRecord.__dataclass_fields__ if k != "is_active"}
    for key in ("created_at", "finished_at"):
        fields[key] = as_utc(fields[key])
    return ModelRecord(**fields, is_active=row.id == active_id)


class ModelRegistry:
    """Model rows in the database, artifact directories under ``artifact_dir``."""

    def __init__(self, engine: Engine, artifact_dir: Path) -> None:
        self.engine = engine
        self.artifact_dir = Path(artifact_dir)
        self.artifact_dir.mkdir(parents=True, exist_ok=True)

    # -- rows ---------------------------------------------------------------------------
    def create(
        self,
        name: str,
        model_type: str,
        params: dict[str, Any],
        dataset_id: int | None = None,
        parent_id: str | None = None,
        info: dict[str, Any] | None = None,
        id_prefix: str | None = None,
    ) -> ModelRecord:
        """A new ``queued`` model with an id like ``als_20250531_153000`` (suffixed if taken)."""
        now = datetime.now(UTC)
        base = f"{(id_prefix or model_type).lower()}_{now:%Y%m%d_%H%M%S}"
        for attempt in range(1, 1000):
            model_id = base if attempt == 1 else f"{base}_{attempt}"
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        insert(models).values(
                            id=model_id,
                            name=name,
                            type=model_type.lower(),
                            status="queued",
                            params=params,
                            info=info or {},
                            dataset_id=dataset_id,
                            parent_id=parent_id,
                            created_at=now,
                        )
                    )
                return self.get(model_id)
            except IntegrityError:
                continue
        raise ConflictError("could not allocate a model id")  # pragma: no cover

    def get(self, model_id: str) -> ModelRecord:
        with self.engine.connect() as conn:
            row = conn.execute(select(models).where(models.c.id == model_id)).first()
            active_id = self._active_id(conn)
        if row is None:
            raise NotFoundError(f"model {model_id!r} not found")
        return _record(row, active_id)

    def list_models(self) -> list[ModelRecord]:
        """Every model, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(models).order_by(models.c.created_at.desc(), models.c.id.desc())
            ).all()
            active_id = self._active_id(conn)
        return [_record(r, active_id) for r in rows]

    def _set_status(self, model_id: str, status: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(models).where(models.c.id == model_id).values(status=status, **values)
            )
        if result.rowcount == 0:
            raise NotFoundError(f"model {model_id!r} not found")

    def mark_training(self, model_id: str) -> None:
        self._set_status(model_id, "training")

    def mark_failed(self, model_id: str, error: str) -> None:
        self._set_status(model_id, "failed", error=error, finished_at=datetime.now(UTC))

    def mark_broken(self, model_id: str, error: str) -> None:
        self._set_status(model_id, "broken", error=error)

    def update_info(self, model_id: str, **info: Any) -> None:
        record = self.get(model_id)
        with self.engine.begin() as conn:
            conn.execute(
                update(models)
                .where(models.c.id == model_id)
                .values(info={**(record.info or {}), **info})
            )

    # -- artifacts ----------------------------------------------------------------------
    def artifact_path(self, record: ModelRecord) -> Path:
        if not record.artifact_path:
            raise ArtifactError(f"model {record.id!r} has no artifact (status {record.status})")
        return self.artifact_dir / record.artifact_path

    def publish(
        self,
        model_id: str,
        bundle: ModelBundle,
        metrics: dict[str, Any] | None = None,
        before_commit: Callable[[], None] | None = None,
    ) -> ModelRecord:
        """Write the artifact completely, then mark the model ``ready`` pointing at it."""
        bundle.meta["model_id"] = model_id
        if metrics is not None:
            bundle.meta["metrics"] = metrics
        directory = self.artifact_dir / model_id
        if directory.exists():  # left by a crash between rename and row update: never referenced
            shutil.rmtree(directory)
        save_bundle(bundle, directory, before_commit=before_commit)
        sha = bundle.meta["arrays_sha256"]
        info = {
            key: bundle.meta.get(key)
            for key in (
                "confidence",
                "data",
                "data_fingerprint",
                "fit_seconds",
                "backend",
                "warnings",
            )
        }
        self._set_status(
            model_id,
            "ready",
            artifact_path=model_id,
            artifact_sha256=sha,
            metrics=metrics,
            info={**(self.get(model_id).info or {}), **info},
            error=None,
            finished_at=datetime.now(UTC),
        )
        return self.get(model_id)

    def register(
        self, name: str, bundle: ModelBundle, info: dict[str, Any] | None = None
    ) -> ModelRecord:
        """Create and publish in one step, for a model trained outside a job (the CLI's
        ``train --register``): a failed write marks the row failed, never leaves it queued
        (no job owns it, so nothing else would ever close it)."""
        record = self.create(name, bundle.model.model_type, bundle.model.params(), info=info)
        try:
            return self.publish(record.id, bundle)
        except BaseException as exc:
            self.mark_failed(record.id, str(exc) or type(exc).__name__)
            raise

    def load(self, model_id: str) -> ModelBundle:
        """Load and verify a ready model's artifact; a failure marks it ``broken``."""
        record = self.get(model_id)
        if record.status != "ready":
            raise ConflictError(
                f"model {model_id!r} is {record.status}; only a ready model can be loaded or active"
            )
        try:
            return load_bundle(self.artifact_path(record), expected_sha256=record.artifact_sha256)
        except ArtifactError as exc:
            self.mark_broken(model_id, str(exc))
            raise

    def delete(self, model_id: str) -> None:
        """Remove a model that is not active, then its artifact directory."""
        record = self.get(model_id)
        if record.is_active:
            raise ConflictError(f"model {model_id!r} is the active model; activate another first")
        if record.status in ("queued", "training"):
            raise ConflictError(f"model {model_id!r} is {record.status}; cancel its job first")
        with self.engine.begin() as conn:
            conn.execute(
                update(models).where(models.c.parent_id == model_id).values(parent_id=None)
            )
            conn.execute(models.delete().where(models.c.id == model_id))
        if record.artifact_path:
            shutil.rmtree(self.artifact_dir / record.artifact_path, ignore_errors=True)

    def remove_orphan_artifacts(self) -> list[str]:
        """Delete temporary and unreferenced artifact directories (left by crashes)."""
        with self.engine.connect() as conn:
            referenced = {
                row[0] for row in conn.execute(select(models.c.artifact_path)) if row[0] is not None
            }
            pending = {
                row[0]
                for row in conn.execute(
                    select(models.c.id).where(models.c.status.in_(("queued", "training")))
                )
            }
        removed = []
        for child in self.artifact_dir.iterdir():
            if child.name in referenced or child.name in pending:
                continue
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()
            removed.append(child.name)
        return removed

    # -- the active model ---------------------------------------------------------------
    @staticmethod
    def _active_id(conn: Any) -> str | None:
        return conn.execute(select(active_model.c.model_id).where(active_model.c.id == 1)).scalar()

    def active_id(self) -> str | None:
        with self.engine.connect() as conn:
            return self._active_id(conn)

    def set_active(self, model_id: str) -> ModelRecord:
        """Point /predict at a ``ready`` model, atomically (one transaction)."""
        with self.engine.begin() as conn:
            query = select(models.c.status).where(models.c.id == model_id)
            if not is_sqlite(self.engine):
                query = query.with_for_update()
            status = conn.execute(query).scalar()
            if status is None:
                raise NotFoundError(f"model {model_id!r} not found")
            if status != "ready":
                raise ConflictError(
                    f"model {model_id!r} is {status}; only a ready model can be active"
                )
            now = datetime.now(UTC)
            changed = conn.execute(
                update(active_model)
                .where(active_model.c.id == 1)
                .values(model_id=model_id, updated_at=now)
            ).rowcount
            if not changed:
                conn.execute(insert(active_model).values(id=1, model_id=model_id, updated_at=now))
        return self.get(model_id)
