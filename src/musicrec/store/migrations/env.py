"""Alembic environment: runs on the connection musicrec hands it (see store.migrate)."""

from __future__ import annotations

from alembic import context

from musicrec.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - musicrec always passes a connection
    raise RuntimeError("run migrations through musicrec.store.migrate.upgrade_database")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
