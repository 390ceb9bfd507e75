"""The Flower ServerApp: the round loop of federated ALS.

Each round it picks the round's song set (bounded upload), samples clients, sends them the
song factors, aggregates their gradient blocks (mean, robust rule, or DP clipped-and-noised
mean) and takes an Adam step on those rows of V. Its own strategy, not FedAvg: the replies
are summed gradients, and FedAvg's example-weighted averaging of whole arrays would be wrong.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp import Grid, ServerApp

from musicrec.federated.config import FederatedConfig, config_from_context
from musicrec.federated.privacy import epsilon_spent, plan_dp
from musicrec.federated.secagg import KEY_BYTES, unmask_sum
from musicrec.federated.task import (
    ARRAYS_KEY,
    CONFIG_KEY,
    FACTORS_ARRAY,
    MASKED_UPDATE_ARRAY,
    METRICS_KEY,
    PUBLIC_KEY_ARRAY,
    PUBLIC_KEYS_ARRAY,
    SONGS_ARRAY,
    UPDATE_ARRAY,
    WEIGHT_METRIC,
    Adam,
    AggregationResult,
    ClientReply,
    aggregate,
    dp_aggregate,
    round_song_set,
    upload_value_bytes,
)

RoundEvaluator = Callable[[np.ndarray], dict[str, float]]


@dataclass
class RunResult:
    """What a run produced, for the driver that started it."""

    item_factors: np.ndarray | None = None
    rounds: list[dict[str, Any]] = field(default_factory=list)
    privacy: dict[str, Any] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)  # what replies carried


@dataclass
class ServerHooks:
    """In-process hooks of a simulation: initial factors, evaluation, progress, result sink."""

    initial_factors: Callable[[FederatedConfig], np.ndarray]
    evaluate: RoundEvaluator | None = None
    on_round: Callable[[int, int, dict[str, Any]], None] | None = None
    result: RunResult = field(default_factory=RunResult)
    # Sent with every training message (e.g. the catalogue fingerprint of a deployment).
    round_config: dict[str, str] = field(default_factory=dict)


def _nbytes(record: ArrayRecord) -> int:
    return sum(len(record[key].data) for key in record)


def _training_message(
    factors: np.ndarray,
    songs: np.ndarray,
    round_index: int,
    node: int,
    public_keys: np.ndarray | None = None,
    secagg_index: int = -1,
    extra_config: dict[str, str] | None = None,
) -> Message:
    arrays = {FACTORS_ARRAY: Array(factors), SONGS_ARRAY: Array(songs.astype(np.int32))}
    round_config: dict[str, int | str] = {"round": round_index, **(extra_config or {})}
    if public_keys is not None:
        arrays[PUBLIC_KEYS_ARRAY] = Array(public_keys)
        round_config["secagg-index"] = secagg_index
    content = RecordDict(
        {
            ARRAYS_KEY: ArrayRecord(array_dict=arrays),
            CONFIG_KEY: ConfigRecord(round_config),  # type: ignore[arg-type]
        }
    )
    return Message(
        content=content, message_type=MessageType.TRAIN, dst_node_id=node, group_id=str(round_index)
    )


def wait_for_nodes(grid: Grid, min_nodes: int, timeout: float) -> list[int]:
    """The connected SuperNodes, once at least ``min_nodes`` (>= 1) have registered."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= max(1, min_nodes):
            return nodes
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"only {len(nodes)} of {max(1, min_nodes)} federated clients connected "
                f"within {timeout:.0f} s"
            )
        time.sleep(0.5)


@dataclass
class _Collected:
    """The usable replies of one round's training messages."""

    replies: list[ClientReply] = field(default_factory=list)
    masked: list[np.ndarray] = field(default_factory=list)
    bytes_up: list[int] = field(default_factory=list)
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def _collect(grid: Grid, messages: list[Message], result: RunResult) -> _Collected:
    collected = _Collected()
    for reply in grid.send_and_receive(messages):
        if reply.has_error():
            collected.failed += 1
            collected.errors.append(reply.error.reason or f"error code {reply.error.code}")
            continue
        arrays = reply.content[ARRAYS_KEY]
        metrics = reply.content[METRICS_KEY]
        assert isinstance(arrays, ArrayRecord) and isinstance(metrics, MetricRecord)
        # The privacy audit: every array name/shape and metric name the server ever received.
        result.received.append(
            {"arrays": {k: list(arrays[k].shape) for k in arrays}, "metrics": sorted(metrics)}
        )
        collected.bytes_up.append(_nbytes(arrays))
        weight = int(metrics[WEIGHT_METRIC])  # type: ignore[arg-type]
        if MASKED_UPDATE_ARRAY in arrays:
            collected.masked.append(arrays[MASKED_UPDATE_ARRAY].numpy())
            collected.replies.append(ClientReply(np.empty(0, dtype=np.float32), weight))
        else:
            collected.replies.append(ClientReply(arrays[UPDATE_ARRAY].numpy(), weight))
    return collected


def _secagg_keys(
    grid: Grid, sampled: list[int], round_index: int, result: RunResult
) -> tuple[list[int], np.ndarray, int]:
    """First message of a secure-aggregation round: the participants' public keys."""
    queries = [
        Message(
            content=RecordDict({CONFIG_KEY: ConfigRecord({"round": round_index})}),
            message_type=MessageType.QUERY,
            dst_node_id=node,
            group_id=f"{round_index}-keys",
        )
        for node in sampled
    ]
    participants: list[int] = []
    keys: list[np.ndarray] = []
    for reply in grid.send_and_receive(queries):
        if reply.has_error():
            continue
        arrays = reply.content[ARRAYS_KEY]
        assert isinstance(arrays, ArrayRecord)
        result.received.append(
            {"arrays": {k: list(arrays[k].shape) for k in arrays}, "metrics": []}
        )
        participants.append(reply.metadata.src_node_id)
        keys.append(arrays[PUBLIC_KEY_ARRAY].numpy())
    order = np.argsort(participants)
    return [participants[i] for i in order], np.stack([keys[i] for i in order]), KEY_BYTES


def run_rounds(grid: Grid, config: FederatedConfig, hooks: ServerHooks) -> RunResult:
    """The federated loop; returns the final song factors and per-round measurements."""
    factors = hooks.initial_factors(config).astype(np.float32)
    n_songs = factors.shape[0]
    nodes = wait_for_nodes(grid, config.min_clients, config.node_timeout_seconds)
    population = len(nodes)
    dp = plan_dp(config, population, n_songs, factors.shape[1])
    per_round, noise, delta = dp.clients_per_round, dp.noise_multiplier, dp.delta
    rng = np.random.default_rng(config.seed)
    optimizer = Adam(factors.shape, config.learning_rate)
    result = hooks.result
    value_bytes = upload_value_bytes(config.secagg)

    for round_index in range(config.rounds):
        started = time.perf_counter()
        songs = round_song_set(
            n_songs,
            factors.shape[1],
            config.max_upload_bytes,
            round_index,
            config.seed,
            value_bytes,
        )
        shape = (songs.shape[0], factors.shape[1])
        # Sample positions, not ids: node ids are uint64 and would not survive numpy's choice.
        sampled = [nodes[i] for i in rng.choice(population, size=per_round, replace=False)]
        key_bytes = 0
        if config.secagg:
            sampled, public_keys, key_bytes = _secagg_keys(grid, sampled, round_index, result)
            messages = [
                _training_message(
                    factors, songs, round_index, node, public_keys, index, hooks.round_config
                )
                for index, node in enumerate(sampled)
            ]
        else:
            messages = [
                _training_message(
                    factors, songs, round_index, node, extra_config=hooks.round_config
                )
                for node in sampled
            ]
        bytes_down = _nbytes(messages[0].content[ARRAYS_KEY])  # type: ignore[arg-type]
        collected = _collect(grid, messages, result)
        if not collected.replies:
            raise RuntimeError(
                f"round {round_index + 1}: no client replied; first error: "
                f"{collected.errors[0] if collected.errors else 'none reported'}"
            )
        if config.secagg:
            combined = _secure_sum(collected, len(sampled), shape, noise, config, per_round, rng)
        elif config.dp_epsilon:
            combined = dp_aggregate(
                collected.replies, shape, config.dp_clip_norm, noise, per_round, rng
            )
        else:
            combined = aggregate(
                collected.replies, shape, config.aggregation, config.clip_norm or None
            )
        if combined.used:
            optimizer.step(factors, songs, combined.gradient)
        up = collected.bytes_up
        row: dict[str, Any] = {
            "round": round_index + 1,
            "clients": int(per_round),
            "clients_used": combined.used,
            "clients_rejected": combined.rejected + collected.failed + per_round - len(sampled),
            "songs_updated": int(songs.shape[0]),
            "bytes_up_per_client": int(np.mean(up)) + key_bytes if up else 0,
            "bytes_down_per_client": int(bytes_down),
        }
        if hooks.evaluate is not None and (
            (round_index + 1) % max(1, config.evaluate_every) == 0
            or round_index + 1 == config.rounds
        ):
            row.update(hooks.evaluate(factors))
        row["seconds"] = round(time.perf_counter() - started, 3)
        result.rounds.append(row)
        if hooks.on_round is not None:
            hooks.on_round(round_index + 1, config.rounds, row)

    result.item_factors = factors
    result.privacy = {
        "epsilon": epsilon_spent(noise, config.rounds, per_round, population, delta)
        if noise
        else None,
        "delta": delta if noise else None,
        "noise_multiplier": noise or None,
        "noise_to_signal": round(dp.noise_to_signal, 2) if noise else None,
        "clip_norm": config.dp_clip_norm if noise else None,
        "secagg": config.secagg,
        "aggregation": ("dp-clipped-mean" if noise else config.aggregation)
        + (" (secure sum)" if config.secagg else ""),
        "clients": population,
        "clients_per_round": int(per_round),
    }
    return result


def _secure_sum(
    collected: _Collected,
    participants: int,
    shape: tuple[int, int],
    noise: float,
    config: FederatedConfig,
    expected_clients: int,
    rng: np.random.Generator,
) -> AggregationResult:
    """Unmask the sum; a round with a missing participant cannot be unmasked and is skipped."""
    if len(collected.masked) != participants or any(m.shape != shape for m in collected.masked):
        return AggregationResult(np.zeros(shape, dtype=np.float32), 0, len(collected.masked))
    total = unmask_sum(collected.masked)
    if config.dp_epsilon:  # clients clipped their per-listener updates; the server adds noise
        total += rng.normal(0.0, noise * config.dp_clip_norm, size=shape)
        gradient = total / max(1, expected_clients)
    else:
        gradient = total / max(1, sum(r.weight for r in collected.replies))
    return AggregationResult(gradient.astype(np.float32), participants, 0)


def make_server_app(overrides: dict[str, Any] | None, hooks: ServerHooks) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        config = config_from_context(context, overrides).validate()
        run_rounds(grid, config, hooks)

    return app
