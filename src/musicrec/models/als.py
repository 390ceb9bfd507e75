"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008) on the `implicit` library.

Confidence is c = 1 + alpha * r for observed cells and 1 for unobserved ones: `implicit` itself
uses c = alpha * r, which with small alpha weighs a listen *less* than a song never played. We
hand it 1 + alpha * r with its alpha fixed to 1, so any alpha >= 0 keeps listens at least as
strong as silence.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from musicrec.errors import InvalidParameterError
from musicrec.models.base import ProgressCallback, Recommender

# Measured on the bundled sample with the per-user holdout (README, "Choosing the defaults").
DEFAULT_ALS_PARAMS: dict[str, Any] = {
    "factors": 32,
    "iterations": 15,
    "regularization": 0.05,
    "alpha": 20.0,
    "seed": 42,
}
PARAM_LIMITS: dict[str, tuple[float, float]] = {
    "factors": (1, 1024),
    "iterations": (1, 1000),
    "regularization": (0.0, 1e6),
    "alpha": (0.0, 1e6),
}
# Below this alpha a listen barely outweighs silence; measured on the sample such models rank
# worse than popularity, so training warns (it does not silently change the value).
WEAK_ALPHA = 1.0


def als_backend() -> str:
    """'gpu' when implicit was built with CUDA and a device is present, else 'cpu'."""
    try:
        import implicit.gpu

        return "gpu" if implicit.gpu.HAS_CUDA else "cpu"
    except ImportError:  # pragma: no cover - implicit always ships implicit.gpu
        return "cpu"


@lru_cache(maxsize=1)
def single_threaded_blas() -> None:
    """Limit BLAS to one thread for the rest of the process, once.

    implicit parallelises with its own OpenMP threads and asks for single-threaded BLAS
    (nested threads only oversubscribe). Doing it once matters: a threadpool_limits context
    per call inspects every loaded library and cost ~3 ms per /predict.
    """
    threadpool_limits(limits=1, user_api="blas")


def validate_als_params(params: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in, ranges checked; raises InvalidParameterError naming the parameter."""
    unknown = set(params) - set(DEFAULT_ALS_PARAMS) - {"threads"}
    if unknown:
        raise InvalidParameterError(f"unknown ALS parameter(s): {', '.join(sorted(unknown))}")
    merged = {**DEFAULT_ALS_PARAMS, **{k: v for k, v in params.items() if v is not None}}
    for name, (low, high) in PARAM_LIMITS.items():
        value = merged[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or np.isnan(value):
            raise InvalidParameterError(f"{name} must be a number, got {value!r}")
        if not low <= value <= high:
            raise InvalidParameterError(f"{name} must be between {low:g} and {high:g}, got {value}")
    merged["factors"] = int(merged["factors"])
    merged["iterations"] = int(merged["iterations"])
    merged["seed"] = int(merged["seed"])
    return merged


def confidence_values(values: np.ndarray, alpha: float) -> np.ndarray:
    """c = 1 + alpha * r for observed cells."""
    return (1.0 + alpha * values).astype(np.float32)


def fold_in_users(
    item_factors: np.ndarray,
    gram: np.ndarray,
    user_items: sp.csr_matrix,
    alpha: float,
    regularization: float,
    threads: int = 0,
) -> np.ndarray:
    """Closed-form ALS user vectors for many listeners at once, item factors held fixed.

    For each row u of ``user_items`` (values r) solves
    (YᵀY + λI + Σ_i (c_i − 1) y_i y_iᵀ) x_u = Σ_i c_i y_i with c_i = 1 + alpha·r_i, using
    ``gram`` = YᵀY; listeners with no songs get the zero vector. This is the step a federated
    client runs on its device, and the fold-in that serves a new listener. It runs on
    implicit's native Cholesky solver (the one ``recalculate_user`` uses), parallel over users.
    """
    from implicit.cpu import _als

    user_items = user_items.tocsr()
    y = np.ascontiguousarray(item_factors, dtype=np.float32)
    result = np.zeros((user_items.shape[0], y.shape[1]), dtype=np.float32)
    confidence = (1.0 + alpha * user_items.data.astype(np.float64)).astype(np.float32)
    single_threaded_blas()
    _als._least_squares(
        np.ascontiguousarray(gram, dtype=np.float32),
        user_items.indptr.astype(np.int32, copy=False),
        user_items.indices.astype(np.int32, copy=False),
        confidence,
        result,
        y,
        float(regularization),
        num_threads=threads,
    )
    return result


def fold_in_all(
    item_factors: np.ndarray, user_items: sp.csr_matrix, alpha: float, regularization: float
) -> np.ndarray:
    """``fold_in_users`` for song factors without a cached Gram matrix (computes YᵀY here)."""
    gram = item_factors.astype(np.float64).T @ item_factors
    return fold_in_users(item_factors, gram, user_items, alpha, regularization)


def ranked_top_n(
    item_factors: np.ndarray,
    user_vectors: np.ndarray,
    n: int,
    exclude: sp.csr_matrix | None = None,
    threads: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-n songs by dot product for each user vector, skipping ``exclude`` (rows = users).

    Returns (song indices int64, scores float32); -1 and -inf pad rows that run out of songs.
    """
    from implicit.cpu.topk import topk

    if user_vectors.shape[0] == 0 or n == 0:
        return np.zeros((user_vectors.shape[0], n), np.int64), np.zeros(
            (user_vectors.shape[0], n), np.float32
        )
    exclude_rows = None
    if exclude is not None:
        exclude_rows = exclude.tocsr().astype(np.float32)
        exclude_rows.indptr = exclude_rows.indptr.astype(np.int32, copy=False)
        exclude_rows.indices = exclude_rows.indices.astype(np.int32, copy=False)
    single_threaded_blas()
    ids, scores = topk(
        np.ascontiguousarray(item_factors, dtype=np.float32),
        np.ascontiguousarray(user_vectors, dtype=np.float32),
        n,
        filter_query_items=exclude_rows,
        num_threads=threads,
    )
    ids = ids.astype(np.int64)
    scores = scores.astype(np.float32)
    # implicit scores filtered songs -FLT_MAX: they are padding, never recommendations.
    padding = scores <= np.finfo(np.float32).min / 2
    ids[padding] = -1
    scores[padding] = -np.inf
    return ids, scores


def fold_in_user(
    item_factors: np.ndarray,
    gram: np.ndarray,
    song_indices: np.ndarray,
    values: np.ndarray,
    alpha: float,
    regularization: float,
) -> np.ndarray:
    """The closed-form ALS user vector of one listener (see ``fold_in_users``)."""
    row = sp.csr_matrix(
        (
            np.asarray(values, dtype=np.float32),
            (np.zeros(len(song_indices), dtype=np.int64), song_indices),
        ),
        shape=(1, item_factors.shape[0]),
    )
    return fold_in_users(item_factors, gram, row, alpha, regularization)[0]


class ALSRecommender(Recommender):
    """ALS matrix factorisation; the CPU or GPU backend is picked once, in ``fit``."""

    model_type: ClassVar[str] = "als"

    def __init__(self, threads: int = 0, **params: Any) -> None:
        self._params = validate_als_params(params)
        self.threads = threads
        self.user_factors = np.zeros((0, self._params["factors"]), dtype=np.float32)
        self.item_factors = np.zeros((0, self._params["factors"]), dtype=np.float32)
        self.backend = als_backend()
        self._gram: np.ndarray | None = None

    @property
    def factors(self) -> int:
        return int(self._params["factors"])

    @property
    def n_songs(self) -> int:
        return int(self.item_factors.shape[0])

    @property
    def n_users(self) -> int:
        return int(self.user_factors.shape[0])

    def params(self) -> dict[str, Any]:
        return dict(self._params)

    def warnings(self) -> list[str]:
        """Parameter choices known to give a weak model, in words for the person training it."""
        notes = []
        if self._params["alpha"] < WEAK_ALPHA:
            notes.append(
                f"alpha={self._params['alpha']:g} makes a listen weigh barely more than silence "
                f"(confidence 1 + alpha*r); on the sample such models rank below popularity. "
                f"The measured default is alpha={DEFAULT_ALS_PARAMS['alpha']:g}."
            )
        return notes

    def fit(self, user_items: sp.csr_matrix, progress: ProgressCallback | None = None) -> None:
        from implicit.als import AlternatingLeastSquares

        for note in self.warnings():
            warnings.warn(note, UserWarning, stacklevel=2)
        confidence = user_items.astype(np.float32, copy=True)
        confidence.data = confidence_values(confidence.data, self._params["alpha"])
        iterations = self._params["iterations"]

        def on_iteration(iteration: int, elapsed: float, loss: float) -> None:
            if progress is not None:
                progress(iteration + 1, iterations)

        # implicit parallelises with its own threads; nested BLAS threads only oversubscribe
        # (implicit warns about it when constructed, so the limit covers construction too).
        with threadpool_limits(limits=1, user_api="blas"):
            model = AlternatingLeastSquares(
                factors=self._params["factors"],
                regularization=self._params["regularization"],
                alpha=1.0,
                iterations=iterations,
                random_state=self._params["seed"],
                use_gpu=self.backend == "gpu",
                num_threads=self.threads,
                calculate_training_loss=False,
            )
            model.fit(confidence, show_progress=False, callback=on_iteration)
        if self.backend == "gpu":  # pragma: no cover - no CUDA on CI machines
            model = model.to_cpu()
        self.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self._gram = None

    def gram(self) -> np.ndarray:
        """YᵀY of the item factors, cached (used by every fold-in)."""
        if self._gram is None:
            y = self.item_factors.astype(np.float64)
            self._gram = y.T @ y
        return self._gram

    def user_scores(self, user_indices: np.ndarray) -> np.ndarray:
        return self.user_factors[user_indices] @ self.item_factors.T

    def _ranked(
        self,
        user_indices: np.ndarray,
        n_out: int,
        heard: sp.csr_matrix | None,
        threads: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        # implicit's native top-k: scores and selects without materialising users x songs
        # (about 7x the numpy path per user at 360k songs); one thread for a single listener,
        # where OpenMP start-up would cost more than it saves.
        if threads is None:
            threads = 1 if user_indices.size == 1 else self.threads
        return ranked_top_n(
            self.item_factors, self.user_factors[user_indices], n_out, heard, threads=threads
        )

    def fold_in(self, song_indices: np.ndarray, values: np.ndarray) -> np.ndarray:
        """User vector for a new listener from the songs they played and their values r."""
        return fold_in_user(
            self.item_factors,
            self.gram(),
            np.asarray(song_indices, dtype=np.int64),
            np.asarray(values, dtype=np.float32),
            self._params["alpha"],
            self._params["regularization"],
        )

    def history_scores(self, song_indices: np.ndarray, values: np.ndarray) -> np.ndarray:
        return self.item_factors @ self.fold_in(song_indices, values)

    def pair_scores(self, user_indices: np.ndarray, song_indices: np.ndarray) -> np.ndarray:
        user_indices = np.asarray(user_indices)
        song_indices = np.asarray(song_indices)
        known = (user_indices >= 0) & (song_indices >= 0)
        scores = np.zeros(user_indices.shape[0], dtype=np.float32)
        u = self.user_factors[user_indices[known]]
        v = self.item_factors[song_indices[known]]
        scores[known] = np.einsum("ij,ij->i", u, v)
        return scores

    def arrays(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    @classmethod
    def from_arrays(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> ALSRecommender:
        model = cls(**params)
        model.user_factors = np.ascontiguousarray(arrays["user_factors"], dtype=np.float32)
        model.item_factors = np.ascontiguousarray(arrays["item_factors"], dtype=np.float32)
        return model
