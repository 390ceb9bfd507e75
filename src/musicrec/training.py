"""Train a model from a listening log, and compare models on one honest split.

The CLI, background jobs and the API all go through these two functions, so a model trained
anywhere is built and evaluated the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from musicrec.data.encoding import (
    DEFAULT_CONFIDENCE,
    EncodedInteractions,
    confidence_scheme,
    heard_matrix,
    interaction_matrix,
)
from musicrec.data.splits import pair_row_split, per_user_holdout
from musicrec.data.synthetic import OracleRecommender, PlantedTaste, planted_path
from musicrec.evaluation import evaluation_report, roc_auc
from musicrec.models import create_model
from musicrec.models.als import ALSRecommender
from musicrec.models.artifacts import ModelBundle
from musicrec.models.base import ProgressCallback, Recommender

EVAL_K = 10
EVAL_TEST_FRACTION = 0.2


def train_bundle(
    data: EncodedInteractions,
    model_type: str = "als",
    params: dict[str, Any] | None = None,
    confidence: str = DEFAULT_CONFIDENCE,
    progress: ProgressCallback | None = None,
    fingerprint: str | None = None,
    threads: int = 0,
) -> ModelBundle:
    """Fit a model on every event of ``data`` and wrap it with its id maps for serving."""
    scheme = confidence_scheme(confidence)
    model = _create(model_type, params or {}, threads)
    started = time.perf_counter()
    matrix = interaction_matrix(data, scheme)
    built = time.perf_counter()
    model.fit(matrix, progress=progress)
    meta: dict[str, Any] = {
        "confidence": scheme.name,
        "data_fingerprint": fingerprint,
        "data": {"rows": data.n_rows, "users": len(data.users), "songs": len(data.songs)},
        "matrix_seconds": round(built - started, 3),
        "fit_seconds": round(time.perf_counter() - built, 3),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "warnings": model.warnings() if isinstance(model, ALSRecommender) else [],
    }
    if isinstance(model, ALSRecommender):
        meta["backend"] = model.backend
    return ModelBundle(
        model=model, users=data.users, songs=data.songs, heard=heard_matrix(data), meta=meta
    )


def _create(model_type: str, params: dict[str, Any], threads: int) -> Recommender:
    if model_type.lower() == ALSRecommender.model_type:
        return create_model(model_type, threads=threads, **params)
    return create_model(model_type, **params)


@dataclass
class ModelSpec:
    """A model to compare: its report name, type, params and confidence scheme."""

    name: str
    model_type: str
    params: dict[str, Any]
    confidence: str = DEFAULT_CONFIDENCE
    factory: Callable[[], Recommender] | None = None

    def build(self, threads: int) -> Recommender:
        """A fresh, unfitted model for this spec."""
        if self.factory is not None:
            return self.factory()
        return _create(self.model_type, self.params, threads)


def oracle_spec(data_path: Path, data: EncodedInteractions) -> ModelSpec | None:
    """The planted-taste oracle of a file made by `musicrec generate` (None for other data):
    it ranks by the true taste, the ceiling any model is reported against."""
    planted_file = planted_path(data_path)
    if not planted_file.exists():
        return None
    planted = PlantedTaste.load(planted_file)
    return ModelSpec(
        "oracle",
        "oracle",
        {},
        factory=lambda: OracleRecommender(planted, data.users, data.songs),
    )


StageCallback = Callable[[str, int, int], None]


def compare_models(
    data: EncodedInteractions,
    specs: list[ModelSpec],
    seed: int = 42,
    k: int = EVAL_K,
    on_stage: StageCallback | None = None,
    threads: int = 0,
) -> dict[str, Any]:
    """Fit each model on the same per-user holdout split and report ranking metrics and AUC.

    Ranking: each test user's held-out positive songs vs the top-k of songs not in their
    training data. AUC: a second, pair-grouped row split; the model trained without the test
    rows scores them against their ``target``. No model ever sees a test row.
    """
    split = per_user_holdout(data, EVAL_TEST_FRACTION, seed)
    heard_train = heard_matrix(data, split.train_rows)[split.test_users]
    relevant = split.test[split.test_users]
    auc_train_rows, auc_test_rows = pair_row_split(data, EVAL_TEST_FRACTION, seed)
    test_users = data.user_codes[auc_test_rows]
    test_songs = data.song_codes[auc_test_rows]
    test_labels = data.target[auc_test_rows]

    models: dict[str, Any] = {}
    for index, spec in enumerate(specs):
        if on_stage:
            on_stage(spec.name, index, len(specs))
        scheme = confidence_scheme(spec.confidence)
        ranker = spec.build(threads)
        ranker.fit(interaction_matrix(data, scheme, split.train_rows))
        recommended, _ = ranker.recommend(split.test_users, k, heard_train)

        scorer = spec.build(threads)
        scorer.fit(interaction_matrix(data, scheme, auc_train_rows))

        auc = roc_auc(test_labels, scorer.pair_scores(test_users, test_songs))
        models[spec.name] = evaluation_report(recommended, relevant, len(data.songs), auc, k)
    return {
        "dataset": {"rows": data.n_rows, "users": len(data.users), "songs": len(data.songs)},
        "split": {
            "method": split.method,
            "seed": seed,
            "test_fraction": split.test_fraction,
            "test_users": int(split.test_users.shape[0]),
            "test_songs": int(split.test.nnz),
            "auc_method": "pair-grouped-row-split",
            "auc_test_rows": int(np.count_nonzero(auc_test_rows)),
        },
        "models": models,
    }
