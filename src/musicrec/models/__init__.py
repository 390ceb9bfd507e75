"""Models: one Recommender interface, ALS and popularity behind it, artifact save/load."""

from __future__ import annotations

from typing import Any

from musicrec.errors import InvalidParameterError
from musicrec.models.als import ALSRecommender
from musicrec.models.base import Recommender
from musicrec.models.popularity import PopularityRecommender

MODEL_TYPES: dict[str, type[Recommender]] = {
    ALSRecommender.model_type: ALSRecommender,
    PopularityRecommender.model_type: PopularityRecommender,
}


def create_model(model_type: str, **params: Any) -> Recommender:
    """The one factory: a model of the named type with the given hyper-parameters."""
    try:
        cls = MODEL_TYPES[model_type.lower()]
    except KeyError:
        known = ", ".join(MODEL_TYPES)
        raise InvalidParameterError(
            f"unknown model type {model_type!r}; use one of {known}"
        ) from None
    return cls(**params)


__all__ = ["MODEL_TYPES", "ALSRecommender", "PopularityRecommender", "Recommender", "create_model"]
