"""Persistence: SQLAlchemy tables, Alembic migrations, the model registry, datasets, jobs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text

from musicrec.store.datasets import DatasetStore
from musicrec.store.db import make_engine
from musicrec.store.jobs import JobStore
from musicrec.store.migrate import upgrade_database
from musicrec.store.registry import ModelRegistry


@dataclass
class Store:
    """Everything musicrec keeps, behind one database URL and one artifact directory."""

    engine: Engine
    datasets: DatasetStore
    registry: ModelRegistry
    jobs: JobStore

    def ping(self) -> bool:
        """True when the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def close(self) -> None:
        self.engine.dispose()


def open_store(database_url: str, artifact_dir: Path, migrate: bool = True) -> Store:
    """Connect, apply migrations (unless told not to) and return the store."""
    engine = make_engine(database_url)
    if migrate:
        upgrade_database(engine)
    return Store(
        engine=engine,
        datasets=DatasetStore(engine),
        registry=ModelRegistry(engine, artifact_dir),
        jobs=JobStore(engine),
    )
