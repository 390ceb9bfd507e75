"""Splits are deterministic and leak nothing."""

from __future__ import annotations

import numpy as np

from musicrec.data.encoding import encode_interactions, heard_matrix, positives_matrix
from musicrec.data.loading import load_interactions
from musicrec.data.splits import pair_row_split, per_user_holdout


def encoded_sample(sample_csv):
    return encode_interactions(load_interactions(sample_csv))


def test_holdout_has_no_leakage_and_is_deterministic(sample_csv):
    data = encoded_sample(sample_csv)
    split = per_user_holdout(data, 0.2, seed=7)
    train_heard = heard_matrix(data, split.train_rows)
    # No held-out pair appears in training at all (not even as a target=0 row).
    assert split.test.multiply(train_heard).nnz == 0
    # Held-out songs were positives of that user.
    assert (split.test - split.test.multiply(positives_matrix(data))).nnz == 0
    again = per_user_holdout(data, 0.2, seed=7)
    assert np.array_equal(split.train_rows, again.train_rows)
    other = per_user_holdout(data, 0.2, seed=8)
    assert not np.array_equal(split.train_rows, other.train_rows)


def test_holdout_keeps_every_test_user_in_training(sample_csv):
    data = encoded_sample(sample_csv)
    split = per_user_holdout(data, 0.2, seed=1, min_positives=2)
    positives_per_user = np.diff(positives_matrix(data).indptr)
    assert np.all(positives_per_user[split.test_users] >= 2)
    train_positive_users = np.unique(data.user_codes[split.train_rows & (data.target == 1)])
    assert np.isin(split.test_users, train_positive_users).all()


def test_pair_row_split_groups_pairs():
    from musicrec.data.encoding import EncodedInteractions, IdMap

    users = np.array([0, 0, 0, 1, 1, 1, 2, 2] * 50, dtype=np.int32)
    songs = np.array([0, 0, 1, 1, 1, 2, 0, 0] * 50, dtype=np.int32)
    data = EncodedInteractions(
        users,
        songs,
        np.ones(400, dtype=np.int8),
        IdMap(np.array(["a", "b", "c"])),
        IdMap(np.array(["x", "y", "z"])),
    )
    train, test = pair_row_split(data, 0.5, seed=3)
    keys = users.astype(np.int64) * 3 + songs
    assert not set(keys[train]) & set(keys[test])
    assert np.all(train ^ test)
