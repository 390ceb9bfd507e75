"""Offline metrics: ranking quality on a per-user holdout and ROC-AUC on ``target``.

All metrics are vectorised over users. Conventions (as in most recommender papers):
recall@k divides hits by the user's number of held-out songs; NDCG@k and MAP@k normalise by
the best achievable with min(k, held-out) hits, so a user with fewer than k held-out songs can
still score 1.0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

METRIC_NAMES = ("precision", "recall", "ndcg", "map", "hit_rate")


def relevance_hits(recommended: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """Boolean (n_users, k): is the song at each rank relevant? -1 (padding) is never relevant.

    ``relevant`` has one row per row of ``recommended``.
    """
    n_users, k = recommended.shape
    rows = np.repeat(np.arange(n_users), k)
    cols = recommended.ravel()
    valid = cols >= 0
    hits = np.zeros(n_users * k, dtype=bool)
    if valid.any():
        looked_up = np.asarray(relevant[rows[valid], cols[valid]]).ravel()
        hits[valid] = looked_up > 0
    return hits.reshape(n_users, k)


def ranking_metrics(
    recommended: np.ndarray, relevant: sp.csr_matrix, k: int | None = None
) -> dict[str, float]:
    """Mean precision, recall, NDCG, MAP and hit rate @k over users with >= 1 relevant song."""
    k = recommended.shape[1] if k is None else k
    recommended = recommended[:, :k]
    n_relevant = np.diff(relevant.tocsr().indptr)
    keep = n_relevant > 0
    recommended, relevant, n_relevant = recommended[keep], relevant[keep], n_relevant[keep]
    if recommended.shape[0] == 0:
        return {f"{name}@{k}": 0.0 for name in METRIC_NAMES}
    hits = relevance_hits(recommended, relevant)
    n_hits = hits.sum(axis=1)
    ideal = np.minimum(n_relevant, k)

    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts).sum(axis=1)
    idcg = np.cumsum(discounts)[ideal - 1]

    precision_at_rank = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    average_precision = (precision_at_rank * hits).sum(axis=1) / ideal

    return {
        f"precision@{k}": float(np.mean(n_hits / k)),
        f"recall@{k}": float(np.mean(n_hits / n_relevant)),
        f"ndcg@{k}": float(np.mean(dcg / idcg)),
        f"map@{k}": float(np.mean(average_precision)),
        f"hit_rate@{k}": float(np.mean(n_hits > 0)),
    }


def catalogue_coverage(recommended: np.ndarray, n_songs: int) -> float:
    """Share of the catalogue that appears in at least one user's list."""
    shown = np.unique(recommended[recommended >= 0])
    return float(shown.shape[0] / n_songs) if n_songs else 0.0


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC-AUC by the Mann-Whitney rank statistic (ties count half). NaN if one class only."""
    labels = np.asarray(labels).astype(bool)
    n_pos = int(labels.sum())
    n_neg = labels.shape[0] - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def evaluation_report(
    recommended: np.ndarray,
    relevant: sp.csr_matrix,
    n_songs: int,
    auc: float | None,
    k: int = 10,
) -> dict[str, Any]:
    """The metric dict printed by ``musicrec evaluate`` for one model (auc None: not measured)."""
    report: dict[str, Any] = ranking_metrics(recommended, relevant, k)
    report["coverage"] = catalogue_coverage(recommended[:, :k], n_songs)
    report["auc"] = auc
    return report
