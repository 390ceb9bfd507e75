"""Metrics against hand-computed cases, including users with fewer than k held-out songs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from musicrec.evaluation import catalogue_coverage, ranking_metrics, roc_auc


def relevant_matrix(rows: list[list[int]], n_songs: int = 10) -> sp.csr_matrix:
    r = [u for u, songs in enumerate(rows) for _ in songs]
    c = [s for songs in rows for s in songs]
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(rows), n_songs))


def test_single_user_hand_computed():
    # relevant {1, 4}; recommended [1, 2, 4]: hits at ranks 1 and 3.
    metrics = ranking_metrics(np.array([[1, 2, 4]]), relevant_matrix([[1, 4]]), k=3)
    assert metrics["precision@3"] == pytest.approx(2 / 3)
    assert metrics["recall@3"] == pytest.approx(1.0)
    dcg = 1 + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3)
    assert metrics["ndcg@3"] == pytest.approx(dcg / idcg)
    assert metrics["map@3"] == pytest.approx((1 + 2 / 3) / 2)
    assert metrics["hit_rate@3"] == 1.0


def test_fewer_relevant_than_k_can_be_perfect():
    # One held-out song, recommended first: NDCG and MAP are 1, precision is 1/k.
    metrics = ranking_metrics(np.array([[7, 1, 2, 3, 4]]), relevant_matrix([[7]]), k=5)
    assert metrics["ndcg@5"] == pytest.approx(1.0)
    assert metrics["map@5"] == pytest.approx(1.0)
    assert metrics["recall@5"] == pytest.approx(1.0)
    assert metrics["precision@5"] == pytest.approx(0.2)


def test_mean_over_users_and_users_without_relevant_skipped():
    recommended = np.array([[0, 1], [2, 3], [5, 6]])
    relevant = relevant_matrix([[1], [9], []])  # third user has nothing held out
    metrics = ranking_metrics(recommended, relevant, k=2)
    assert metrics["recall@2"] == pytest.approx(0.5)  # (1 + 0) / 2 users
    assert metrics["hit_rate@2"] == pytest.approx(0.5)
    assert metrics["ndcg@2"] == pytest.approx((1 / math.log2(3)) / 2)


def test_padding_is_never_a_hit():
    metrics = ranking_metrics(np.array([[3, -1, -1]]), relevant_matrix([[3, 0]]), k=3)
    assert metrics["recall@3"] == pytest.approx(0.5)


def test_coverage():
    assert catalogue_coverage(np.array([[0, 1], [1, 2], [-1, 2]]), 10) == pytest.approx(0.3)


def test_auc_hand_computed_with_ties():
    labels = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.1, 0.5, 0.5])
    # pairs (pos, neg): (0.9>0.1)=1, (0.9>0.5)=1, (0.5>0.1)=1, (0.5=0.5)=0.5 -> 3.5/4
    assert roc_auc(labels, scores) == pytest.approx(0.875)
    assert roc_auc(labels, -scores) == pytest.approx(0.125)
    assert math.isnan(roc_auc(np.ones(3), np.arange(3)))
