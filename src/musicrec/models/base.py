"""The one interface every musicrec model implements, with the shared top-n and filtering."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from musicrec.errors import InvalidParameterError

ProgressCallback = Callable[[int, int], None]
# Scoring users in blocks bounds memory: block x n_songs float32 scores at a time.
_SCORE_BLOCK_CELLS = 16_000_000


def top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the n highest scores of each row, best first.

    Entries scored -inf (filtered) are returned as index -1 when a row has fewer than n others.
    """
    n_items = scores.shape[1]
    n = min(n, n_items)
    if n < n_items:
        part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    else:
        part = np.broadcast_to(np.arange(n_items), (scores.shape[0], n_items)).copy()
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    ids = np.take_along_axis(part, order, axis=1)
    values = np.take_along_axis(part_scores, order, axis=1)
    ids = np.where(np.isneginf(values), -1, ids)
    return ids, values


class Recommender(ABC):
    """fit on a users x songs value matrix; recommend for known users or a new history."""

    model_type: ClassVar[str]

    @abstractmethod
    def fit(self, user_items: sp.csr_matrix, progress: ProgressCallback | None = None) -> None:
        """Learn from the users x songs value matrix (values r >= 0, see ConfidenceScheme)."""

    @abstractmethod
    def user_scores(self, user_indices: np.ndarray) -> np.ndarray:
        """Dense scores, shape (len(user_indices), n_songs)."""

    @abstractmethod
    def history_scores(self, song_indices: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Scores over all songs for a listener the model has not seen (fold-in)."""

    @abstractmethod
    def pair_scores(self, user_indices: np.ndarray, song_indices: np.ndarray) -> np.ndarray:
        """Score of each (user, song) pair; index -1 (unknown) scores as the neutral 0."""

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The hyper-parameters, JSON-serialisable."""

    @abstractmethod
    def arrays(self) -> dict[str, np.ndarray]:
        """The learned state as named numpy arrays (what an artifact stores)."""

    @classmethod
    @abstractmethod
    def from_arrays(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> Recommender:
        """Rebuild a fitted model from ``params()`` and ``arrays()``."""

    @property
    @abstractmethod
    def n_songs(self) -> int:
        """Size of the song catalogue the model scores."""

    @property
    @abstractmethod
    def n_users(self) -> int:
        """Number of users the model has a state for."""

    def recommend(
        self,
        user_indices: np.ndarray,
        n: int,
        heard: sp.csr_matrix | None = None,
        threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-n songs for each user, excluding the songs in ``heard`` (rows = user_indices).

        Returns (song indices, scores), each (len(user_indices), n); -1 pads rows that run out.
        ``threads`` caps the threads of a native kernel (None: the model's own setting).
        """
        _check_n(n)
        user_indices = np.asarray(user_indices, dtype=np.int64)
        if user_indices.size and (user_indices.min() < 0 or user_indices.max() >= self.n_users):
            raise InvalidParameterError(f"user index out of range 0..{self.n_users - 1}")
        if heard is not None and heard.shape[0] != user_indices.shape[0]:
            raise InvalidParameterError("heard must have one row per requested user")
        return self._ranked(user_indices, min(n, self.n_songs), heard, threads)

    def _ranked(
        self,
        user_indices: np.ndarray,
        n_out: int,
        heard: sp.csr_matrix | None,
        threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Dense scoring in blocks, then top-n (models with a faster kernel override this)."""
        ids = np.empty((user_indices.shape[0], n_out), dtype=np.int64)
        values = np.empty((user_indices.shape[0], n_out), dtype=np.float32)
        block = max(1, _SCORE_BLOCK_CELLS // max(1, self.n_songs))
        for start in range(0, user_indices.shape[0], block):
            stop = start + block
            scores = self.user_scores(user_indices[start:stop]).astype(np.float32, copy=True)
            if heard is not None:
                _mask_heard(scores, heard[start:stop])
            ids[start:stop], values[start:stop] = top_n(scores, n_out)
        return ids, values

    def recommend_for_history(
        self,
        song_indices: np.ndarray,
        n: int,
        values: np.ndarray | None = None,
        filter_heard: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-n songs for a new listener given the songs they played (no retraining)."""
        _check_n(n)
        song_indices = np.asarray(song_indices, dtype=np.int64)
        if values is None:
            values = np.ones(song_indices.shape[0], dtype=np.float32)
        scores = self.history_scores(song_indices, values).astype(np.float32, copy=True)[None, :]
        if filter_heard and song_indices.size:
            scores[0, song_indices] = -np.inf
        ids, top = top_n(scores, min(n, self.n_songs))
        return ids[0], top[0]


def _check_n(n: int) -> None:
    if n < 1:
        raise InvalidParameterError(f"n must be at least 1, got {n}")


def _mask_heard(scores: np.ndarray, heard: sp.csr_matrix) -> None:
    heard = heard.tocsr()
    rows = np.repeat(np.arange(heard.shape[0]), np.diff(heard.indptr))
    scores[rows, heard.indices] = -np.inf
