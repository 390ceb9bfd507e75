"""Differential-privacy accounting for federated runs, on Flower's RDP accountant.

Client-level DP: a neighbouring population differs in one client's whole data. Clients are
sampled uniformly without replacement (K of N per round), which Flower's accountant models
with the replace-one relation; when every client takes part each round there is no sampling
amplification.
"""

from __future__ import annotations

from flwr.serverapp import (
    GaussianPrivacyEvent,
    NeighboringRelation,
    PrivacyConfig,
    SamplingMethod,
)
from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

from musicrec.errors import InvalidParameterError


def default_delta(population: int) -> float:
    """δ well below 1/N, the usual requirement for a meaningful guarantee."""
    return min(1e-5, 1.0 / (10.0 * population))


def epsilon_spent(
    noise_multiplier: float, rounds: int, clients_per_round: int, population: int, delta: float
) -> float:
    """ε after ``rounds`` Gaussian releases with noise multiplier σ and K-of-N sampling."""
    if clients_per_round >= population:
        sampling, relation = SamplingMethod.NO_AMPLIFICATION, NeighboringRelation.ADD_OR_REMOVE_ONE
    else:
        sampling, relation = SamplingMethod.WITHOUT_REPLACEMENT, NeighboringRelation.REPLACE_ONE
    accountant = RdpAccountant(PrivacyConfig(delta, population, relation, sampling))
    accountant.compose(
        GaussianPrivacyEvent(noise_multiplier, min(clients_per_round, population), population),
        rounds,
    )
    return float(accountant.get_epsilon(delta))


def noise_for_epsilon(
    target_epsilon: float, rounds: int, clients_per_round: int, population: int, delta: float
) -> float:
    """The smallest noise multiplier σ whose run stays within ``target_epsilon``."""
    if target_epsilon <= 0:
        raise InvalidParameterError(f"dp epsilon must be positive, got {target_epsilon}")
    low, high = 0.05, 1000.0
    if epsilon_spent(high, rounds, clients_per_round, population, delta) > target_epsilon:
        raise InvalidParameterError(
            f"epsilon {target_epsilon} is not reachable with {rounds} rounds"
        )
    for _ in range(40):
        mid = (low + high) / 2
        if epsilon_spent(mid, rounds, clients_per_round, population, delta) > target_epsilon:
            low = mid
        else:
            high = mid
    return high
