"""Secure aggregation by pairwise masking (Bonawitz et al. 2017, without dropout recovery).

Flower 1.42's SecAgg+ (``SecAggPlusWorkflow`` + ``secaggplus_mod``) only runs with its legacy
strategy API, not with the Message-API ServerApp this project uses, so the protocol's core is
implemented here on plain Flower messages:

1. key round: every sampled client makes an ephemeral X25519 key pair and sends the public
   key (32 bytes); its private key stays in the client's own state;
2. train round: the server forwards all public keys; each pair of clients (i, j) derives the
   same secret by Diffie-Hellman, expands it with a PRG into a mask m_ij over the update's
   shape, and client i sends  q_i + Σ_{j>i} m_ij − Σ_{j<i} m_ji  (mod 2^64), where q_i is its
   update in fixed point. The masks cancel in the sum, so the server learns only Σ q_i.

What it costs: one extra message exchange per round, 8 bytes per value instead of 4 (the
round's song set shrinks to keep the upload bound), and n−1 key agreements plus n−1 mask
expansions per client. What it does not do: recover from a client that drops out between the
two messages (SecAgg+ uses Shamir shares for that; here the round is discarded and counted),
detect a malicious client (a masked update cannot be inspected, so robust aggregation and
secure aggregation exclude each other), or stop a server that substitutes public keys.
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# Fixed point: 2^24 steps per unit keeps 6e-8 resolution and ±5e11 of headroom per sum.
FIXED_POINT_SCALE = float(2**24)
KEY_BYTES = 32
MASKED_BYTES = 8  # uint64 per value


def new_private_key() -> bytes:
    return X25519PrivateKey.generate().private_bytes_raw()


def public_key(private_key: bytes) -> bytes:
    key = X25519PrivateKey.from_private_bytes(private_key)
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _pair_seed(private_key: bytes, peer_public: bytes, round_index: int) -> int:
    shared = X25519PrivateKey.from_private_bytes(private_key).exchange(
        X25519PublicKey.from_public_bytes(peer_public)
    )
    info = f"musicrec-secagg-round-{round_index}".encode()
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)
    return int.from_bytes(derived, "big")


def to_fixed_point(values: np.ndarray) -> np.ndarray:
    return np.round(values.astype(np.float64) * FIXED_POINT_SCALE).astype(np.int64).view(np.uint64)


def from_fixed_point(total: np.ndarray) -> np.ndarray:
    return total.view(np.int64).astype(np.float64) / FIXED_POINT_SCALE


def mask_update(
    update: np.ndarray,
    private_key: bytes,
    own_index: int,
    public_keys: np.ndarray,
    round_index: int,
) -> np.ndarray:
    """The client's fixed-point update plus its pairwise masks (uint64, wraps mod 2^64)."""
    if not np.isfinite(update).all():
        raise ValueError("a secure-aggregation update must be finite")
    masked = to_fixed_point(update)
    for peer, peer_key in enumerate(public_keys):
        if peer == own_index:
            continue
        rng = np.random.Generator(
            np.random.PCG64(_pair_seed(private_key, bytes(peer_key), round_index))
        )
        mask = rng.integers(0, 2**64, size=update.shape, dtype=np.uint64, endpoint=False)
        # One side adds, the other subtracts: the pair's masks cancel in the sum.
        masked = masked + mask if own_index < peer else masked - mask
    return masked


def unmask_sum(masked_updates: list[np.ndarray]) -> np.ndarray:
    """The sum of the clients' updates (float), once every masked update is in."""
    total = np.zeros(masked_updates[0].shape, dtype=np.uint64)
    for masked in masked_updates:
        total += masked
    return from_fixed_point(total)
