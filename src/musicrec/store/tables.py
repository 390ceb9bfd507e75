"""The registry's tables (SQLAlchemy Core). Schema changes go through an Alembic migration."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)

metadata = MetaData()


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; every stored time is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("source", Text, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("users", Integer, nullable=False),
    Column("songs", Integer, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# One row per listening event, in arrival order (seq), so reading a dataset back gives the
# same rows in the same order as its file: same id encoding, same model for the same seed.
interactions = Table(
    "interactions",
    metadata,
    Column("dataset_id", Integer, ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("msno", Text, nullable=False),
    Column("song_id", Text, nullable=False),
    Column("source_system_tab", Text, nullable=False),
    Column("source_screen_name", Text, nullable=False),
    Column("source_type", Text, nullable=False),
    Column("target", SmallInteger, nullable=False),
    Index("ix_interactions_dataset_seq", "dataset_id", "seq", unique=True),
)

models = Table(
    "models",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("type", String(40), nullable=False),
    # queued | training | ready | failed | broken
    Column("status", String(20), nullable=False),
    Column("params", JSON, nullable=False),
    Column("metrics", JSON, nullable=True),
    Column("info", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("dataset_id", Integer, ForeignKey("datasets.id", ondelete="SET NULL"), nullable=True),
    Column("parent_id", String(80), ForeignKey("models.id", ondelete="SET NULL"), nullable=True),
    Column("artifact_path", Text, nullable=True),
    Column("artifact_sha256", String(64), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Index("ix_models_created_at", "created_at"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(20), nullable=False),  # train | federate
    # queued | running | succeeded | failed | cancelled
    Column("status", String(20), nullable=False),
    Column("progress", Float, nullable=False, default=0.0),
    Column("message", Text, nullable=True),
    Column("params", JSON, nullable=False),
    Column("model_id", String(80), ForeignKey("models.id", ondelete="SET NULL"), nullable=True),
    Column("error", Text, nullable=True),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("worker_pid", Integer, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_jobs_status", "status"),
)

# A single row (id = 1): the model /predict serves.
active_model = Table(
    "active_model",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", String(80), ForeignKey("models.id"), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
