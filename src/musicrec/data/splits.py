"""Deterministic train/test splits with no leakage: a (user, song) pair lives on one side only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from musicrec.data.encoding import EncodedInteractions
from musicrec.errors import InvalidParameterError


@dataclass
class HoldoutSplit:
    """Per-user holdout for ranking metrics.

    ``train_rows`` masks the event rows to train on; ``test`` is a binary users x songs matrix
    of each test user's held-out positive songs (none of which occur in that user's train rows).
    """

    train_rows: np.ndarray
    test: sp.csr_matrix
    test_users: np.ndarray
    seed: int
    test_fraction: float
    method: str = "per-user-holdout"


def _check_fraction(test_fraction: float) -> None:
    if not 0.0 < test_fraction < 1.0:
        raise InvalidParameterError(f"test fraction must be in (0, 1), got {test_fraction}")


def _pair_keys(data: EncodedInteractions) -> np.ndarray:
    return data.user_codes.astype(np.int64) * len(data.songs) + data.song_codes


def per_user_holdout(
    data: EncodedInteractions,
    test_fraction: float = 0.2,
    seed: int = 42,
    min_positives: int = 2,
) -> HoldoutSplit:
    """Hold out a seeded random ``test_fraction`` of each user's positive songs.

    Users with fewer than ``min_positives`` positive songs stay wholly in training (they cannot
    be both trained and tested). Every event row of a held-out pair leaves training, target=0
    rows included, so nothing about a test pair leaks into the model.
    """
    _check_fraction(test_fraction)
    keys = _pair_keys(data)
    positive_pairs = np.unique(keys[data.target == 1])
    n_songs = len(data.songs)
    pair_users = positive_pairs // n_songs
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(size=(positive_pairs.shape[0],)), pair_users))
    sorted_users = pair_users[order]
    counts = np.bincount(sorted_users, minlength=len(data.users))
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank_in_user = np.arange(sorted_users.shape[0]) - first[sorted_users]
    n_test = np.where(
        counts >= min_positives, np.maximum(1, np.round(counts * test_fraction)), 0
    ).astype(np.int64)
    held_out = np.sort(positive_pairs[order][rank_in_user < n_test[sorted_users]])

    train_rows = ~np.isin(keys, held_out, assume_unique=False)
    test_users_of_pairs = (held_out // n_songs).astype(np.int32)
    test_songs = (held_out % n_songs).astype(np.int32)
    test = sp.csr_matrix(
        (np.ones(held_out.shape[0], dtype=np.float32), (test_users_of_pairs, test_songs)),
        shape=data.shape,
    )
    return HoldoutSplit(
        train_rows=train_rows,
        test=test,
        test_users=np.unique(test_users_of_pairs),
        seed=seed,
        test_fraction=test_fraction,
    )


def pair_row_split(
    data: EncodedInteractions, test_fraction: float = 0.2, seed: int = 42
) -> tuple[np.ndarray, np.ndarray]:
    """Random split of event rows for AUC on ``target``, grouped so a pair is on one side only.

    Returns boolean masks (train_rows, test_rows).
    """
    _check_fraction(test_fraction)
    keys = _pair_keys(data)
    unique_keys, inverse = np.unique(keys, return_inverse=True)
    rng = np.random.default_rng(seed)
    pair_in_test = rng.random(size=(unique_keys.shape[0],)) < test_fraction
    test_rows = pair_in_test[inverse]
    return ~test_rows, test_rows
