"""Federated implicit ALS (the FCF family, Ammad-ud-din et al. 2019): plain math, no Flower.

The server owns the song factors V. A client owns its listeners' interactions and user
vectors, which never leave it. In a round a client:
  1. solves each listener's vector x_u in closed form against the V it received (ALS step);
  2. computes the gradient of its listeners' implicit-ALS loss w.r.t. the rows of V in the
     round's song set S, densely over S, and sends only that |S| x f block.
The server aggregates the blocks (weighted mean, or a robust rule), optionally clips and
adds Gaussian noise (differential privacy), and applies an Adam step to V[S].

Loss of one listener: Σ_i c_ui (p_ui − x_uᵀv_i)² with p = 1, c = 1 + α·r on played songs and
p = 0, c = 1 elsewhere. Its gradient w.r.t. v_i is
    2·(x_uᵀv_i)·x_u                       for every song (the dense "unobserved" part), plus
    2·((c_ui − 1)·x_uᵀv_i − c_ui)·x_u    more for played songs.
Summed over songs in S the dense part is 2·V_S·(x_u x_uᵀ): cheap for the client, and the
block is dense over S, so the server cannot read off which songs were played from which
rows are non-zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from musicrec.federated.secagg import MASKED_BYTES
from musicrec.models.als import fold_in_users

# Record keys shared by the client and server apps.
ARRAYS_KEY = "arrays"
METRICS_KEY = "metrics"
CONFIG_KEY = "config"
FACTORS_ARRAY = "item_factors"
SONGS_ARRAY = "round_songs"
UPDATE_ARRAY = "update"
MASKED_UPDATE_ARRAY = "masked_update"  # secure aggregation: uint64, pairwise masked
PUBLIC_KEY_ARRAY = "public_key"  # secure aggregation: a client's ephemeral X25519 key
PUBLIC_KEYS_ARRAY = "public_keys"  # secure aggregation: the round's keys, server -> clients
# The only metric a client reports: how many listeners its update sums over (its weight).
WEIGHT_METRIC = "num_users"
FLOAT_BYTES = 4


def upload_value_bytes(secagg: bool) -> int:
    """Bytes per uploaded value: float32, or uint64 fixed point under secure aggregation."""
    return MASKED_BYTES if secagg else FLOAT_BYTES


def round_song_set(
    n_songs: int,
    factors: int,
    max_upload_bytes: int,
    round_index: int,
    seed: int,
    value_bytes: int = FLOAT_BYTES,
) -> np.ndarray:
    """The rows of V a round updates: all songs if an update over all fits the upload bound,
    else a window of a fixed seeded permutation, rotating so every song comes up in turn."""
    # 1 kB of the budget is left for framing and the secure-aggregation key.
    capacity = max(1, (max_upload_bytes - 1024) // (factors * value_bytes))
    if n_songs <= capacity:
        return np.arange(n_songs)
    permutation = np.random.default_rng(seed).permutation(n_songs)
    windows = -(-n_songs // capacity)
    window = round_index % windows
    return np.sort(permutation[window * capacity : (window + 1) * capacity])


def client_update(
    item_factors: np.ndarray,
    user_items: sp.csr_matrix,
    round_songs: np.ndarray,
    alpha: float,
    regularization: float,
) -> np.ndarray:
    """The summed loss gradient of a client's listeners w.r.t. V[round_songs] (|S| x f)."""
    v = item_factors.astype(np.float64)
    gram = v.T @ v
    x = fold_in_users(item_factors, gram, user_items, alpha, regularization).astype(np.float64)
    v_s = v[round_songs]
    update = 2.0 * v_s @ (x.T @ x)
    position = np.full(item_factors.shape[0], -1, dtype=np.int64)
    position[round_songs] = np.arange(round_songs.shape[0])
    coo = user_items.tocoo()
    in_round = position[coo.col] >= 0
    users, songs = coo.row[in_round], coo.col[in_round]
    c = 1.0 + alpha * coo.data[in_round].astype(np.float64)
    x_u = x[users]
    score = np.einsum("ij,ij->i", x_u, v[songs])
    np.add.at(update, position[songs], (2.0 * ((c - 1.0) * score - c))[:, None] * x_u)
    return update.astype(np.float32)


@dataclass
class ClientReply:
    """What the server received from one client in a round."""

    update: np.ndarray
    weight: int


@dataclass
class AggregationResult:
    gradient: np.ndarray  # mean per listener
    used: int
    rejected: int  # non-finite or malformed updates


def _finite(replies: list[ClientReply], shape: tuple[int, ...]) -> tuple[list[ClientReply], int]:
    good = [
        r
        for r in replies
        if r.update.shape == shape and r.weight > 0 and np.isfinite(r.update).all()
    ]
    return good, len(replies) - len(good)


def clip_to_norm(update: np.ndarray, bound: float) -> np.ndarray:
    norm = float(np.linalg.norm(update))
    return update if norm <= bound or norm == 0 else update * (bound / norm)


def aggregate(
    replies: list[ClientReply],
    shape: tuple[int, ...],
    method: str = "mean",
    clip_norm: float | None = None,
    trim_fraction: float = 0.2,
) -> AggregationResult:
    """Combine client updates into the mean per-listener gradient.

    mean:          Σ updates / Σ weights (FedAvg for summed gradients).
    clip:          updates pointing against the round's coordinate-wise median are rejected,
                   then each per-listener update is clipped to ``clip_norm`` (default 3x the
                   median norm of the round) and weighted-averaged: bounds any one client.
    trimmed-mean:  coordinate-wise mean of per-listener updates after dropping the highest and
                   lowest ``trim_fraction`` of clients.
    median:        coordinate-wise median of per-listener updates.
    Non-finite or malformed updates are always dropped and counted.
    """
    good, rejected = _finite(replies, shape)
    if not good:
        return AggregationResult(np.zeros(shape, dtype=np.float32), 0, rejected)
    weights = np.array([r.weight for r in good], dtype=np.float64)
    per_user = [r.update.astype(np.float64) / r.weight for r in good]
    if method == "mean":
        total = np.sum([r.update.astype(np.float64) for r in good], axis=0)
        gradient = total / weights.sum()
    elif method == "clip":
        # Direction check first: an update pointing against the coordinate-wise median of the
        # round (cosine < 0) is rejected; then norms are bounded, so no client outweighs ~3.
        if len(good) >= 3:
            reference = np.median(np.stack(per_user), axis=0).ravel()
            keep = [float(u.ravel() @ reference) > 0 for u in per_user]
            rejected += len(keep) - sum(keep)
            per_user = [u for u, k in zip(per_user, keep, strict=True) if k]
            weights = weights[np.array(keep)]
            good = [r for r, k in zip(good, keep, strict=True) if k]
        norms = np.array([np.linalg.norm(u) for u in per_user])
        bound = clip_norm if clip_norm is not None else 3.0 * float(np.median(norms))
        clipped = [clip_to_norm(u, bound) * w for u, w in zip(per_user, weights, strict=True)]
        gradient = np.sum(clipped, axis=0) / weights.sum()
    elif method in ("trimmed-mean", "median"):
        stacked = np.stack(per_user)
        if method == "median":
            gradient = np.median(stacked, axis=0)
        else:
            trim = int(np.floor(trim_fraction * len(good)))
            ordered = np.sort(stacked, axis=0)
            gradient = ordered[trim : len(good) - trim].mean(axis=0)
    else:
        raise ValueError(f"unknown aggregation {method!r}")
    return AggregationResult(gradient.astype(np.float32), len(good), rejected)


def dp_aggregate(
    replies: list[ClientReply],
    shape: tuple[int, ...],
    clip_norm: float,
    noise_multiplier: float,
    expected_clients: int,
    rng: np.random.Generator,
) -> AggregationResult:
    """Client-level DP (DP-FedAvg, McMahan et al. 2018): clip each client's whole update to
    L2 ``clip_norm``, sum, add N(0, (σ·clip_norm)²) per coordinate, divide by the expected
    number of clients (not the realised weights, which would leak)."""
    good, rejected = _finite(replies, shape)
    total = np.zeros(shape, dtype=np.float64)
    for reply in good:
        total += clip_to_norm(reply.update.astype(np.float64) / reply.weight, clip_norm)
    total += rng.normal(0.0, noise_multiplier * clip_norm, size=shape)
    return AggregationResult(
        (total / max(1, expected_clients)).astype(np.float32), len(good), rejected
    )


class Adam:
    """Adam on rows of V, with per-row step counts (rows are updated in different rounds)."""

    def __init__(
        self,
        shape: tuple[int, int],
        learning_rate: float,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
    ) -> None:
        self.lr, self.beta1, self.beta2, self.eps = learning_rate, beta1, beta2, eps
        self.m = np.zeros(shape, dtype=np.float64)
        self.v = np.zeros(shape, dtype=np.float64)
        self.steps = np.zeros(shape[0], dtype=np.int64)

    def step(self, params: np.ndarray, rows: np.ndarray, gradient: np.ndarray) -> None:
        g = gradient.astype(np.float64)
        self.steps[rows] += 1
        t = self.steps[rows][:, None]
        self.m[rows] = self.beta1 * self.m[rows] + (1 - self.beta1) * g
        self.v[rows] = self.beta2 * self.v[rows] + (1 - self.beta2) * g * g
        m_hat = self.m[rows] / (1 - self.beta1**t)
        v_hat = self.v[rows] / (1 - self.beta2**t)
        params[rows] -= (self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(params.dtype)
