"""Writes that span the registry and the in-memory service, kept in one place."""

from __future__ import annotations

from musicrec.api.deps import AppState
from musicrec.store.registry import ModelRecord


def activate_model(state: AppState, model_id: str) -> ModelRecord:
    """Verify the artifact loads, persist the pointer, then swap the served model.

    The load comes first: a model whose artifact fails is marked broken (by the registry)
    and the current active model keeps serving.
    """
    bundle = state.store.registry.load(model_id)
    record = state.store.registry.set_active(model_id)
    state.service.activate(model_id, bundle)
    return record
