"""Popularity baseline: every listener gets the most-listened songs they have not heard."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from musicrec.models.base import ProgressCallback, Recommender


class PopularityRecommender(Recommender):
    """Scores a song by how many listeners have it in their training data (r > 0)."""

    model_type: ClassVar[str] = "popularity"

    def __init__(self) -> None:
        self.song_counts = np.zeros(0, dtype=np.float32)
        self._n_users = 0

    def fit(self, user_items: sp.csr_matrix, progress: ProgressCallback | None = None) -> None:
        self.song_counts = np.bincount(user_items.indices, minlength=user_items.shape[1]).astype(
            np.float32
        )
        self._n_users = int(user_items.shape[0])
        if progress is not None:
            progress(1, 1)

    @property
    def n_songs(self) -> int:
        return int(self.song_counts.shape[0])

    @property
    def n_users(self) -> int:
        return self._n_users

    def user_scores(self, user_indices: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.song_counts, (len(user_indices), self.n_songs))

    def history_scores(self, song_indices: np.ndarray, values: np.ndarray) -> np.ndarray:
        return self.song_counts

    def pair_scores(self, user_indices: np.ndarray, song_indices: np.ndarray) -> np.ndarray:
        song_indices = np.asarray(song_indices)
        known = song_indices >= 0
        scores = np.zeros(song_indices.shape[0], dtype=np.float32)
        scores[known] = self.song_counts[song_indices[known]]
        return scores

    def params(self) -> dict[str, Any]:
        return {}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"song_counts": self.song_counts, "n_users": np.array([self._n_users])}

    @classmethod
    def from_arrays(
        cls, params: dict[str, Any], arrays: dict[str, np.ndarray]
    ) -> PopularityRecommender:
        model = cls()
        model.song_counts = arrays["song_counts"].astype(np.float32)
        model._n_users = int(arrays["n_users"][0])
        return model
