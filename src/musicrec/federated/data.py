"""The data each federated client holds: its own listeners' training interactions.

In simulation every client process reads the shared data file and keeps only its own
partition; only the client's own rows are ever used by its code, and nothing but the update
block leaves it. The split is the same seeded per-user holdout the centralized model uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from musicrec.data.encoding import (
    EncodedInteractions,
    confidence_scheme,
    encode_interactions,
    heard_matrix,
    interaction_matrix,
)
from musicrec.data.loading import load_interactions
from musicrec.data.splits import HoldoutSplit, per_user_holdout
from musicrec.errors import InvalidParameterError
from musicrec.training import EVAL_TEST_FRACTION


@dataclass
class FederatedData:
    encoded: EncodedInteractions
    split: HoldoutSplit
    train: sp.csr_matrix  # users x songs values r of the training rows
    heard: sp.csr_matrix  # users x songs, 1 where a training row exists


@lru_cache(maxsize=2)
def prepare(path: str, confidence: str, seed: int) -> FederatedData:
    """Load, encode and split once per process (the simulation's clients share a process)."""
    encoded = encode_interactions(load_interactions(Path(path), for_training=True))
    split = per_user_holdout(encoded, EVAL_TEST_FRACTION, seed)
    train = interaction_matrix(encoded, confidence_scheme(confidence), split.train_rows)
    return FederatedData(encoded, split, train, heard_matrix(encoded, split.train_rows))


def parse_partition(partition: str, n_users: int) -> int:
    """'user' (one client per listener) or 'silo:N' (N clients); returns the client count."""
    if partition == "user":
        return n_users
    if partition.startswith("silo:"):
        try:
            count = int(partition.split(":", 1)[1])
        except ValueError:
            count = 0
        if 1 <= count <= n_users:
            return count
    raise InvalidParameterError(
        f"invalid partition {partition!r}: use 'user' or 'silo:N' with 1 <= N <= {n_users}"
    )


def client_users(partition_id: int, num_partitions: int, n_users: int, seed: int) -> np.ndarray:
    """The listeners of one client: a seeded shuffle of all listeners cut into equal parts."""
    order = np.random.default_rng(seed + 1).permutation(n_users)
    return np.sort(np.array_split(order, num_partitions)[partition_id])
