"""The Flower ClientApp: what a device (or silo) does with a training message.

It receives the song factors and the round's song set, solves its listeners' vectors locally
and replies with the gradient block over the round's songs plus one metric, its listener
count. Raw interactions, user vectors and the list of played songs stay on the client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp

from musicrec.federated.config import FederatedConfig, config_from_context
from musicrec.federated.data import client_users, prepare
from musicrec.federated.secagg import mask_update, new_private_key, public_key
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
    client_update,
    clip_to_norm,
)

SECAGG_STATE = "secagg"


def poison(update: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
    """Testing only: what a malicious or broken client might send."""
    if mode == "nan":
        return np.full_like(update, np.nan)
    if mode == "huge":
        return update * 1e6
    # adversarial: a large update pointing the other way, to drag the model off course
    return (-50.0 * update + rng.normal(0, float(np.abs(update).mean()) * 50, update.shape)).astype(
        update.dtype
    )


LocalData = Callable[[Context, FederatedConfig], tuple[sp.csr_matrix, int]]


def simulation_local_data(context: Context, config: FederatedConfig) -> tuple[sp.csr_matrix, int]:
    """Simulation: this client's listeners of the shared data file (training rows only).

    Returns the users x songs values of the client's listeners and its partition id."""
    partition_id = int(context.node_config["partition-id"])
    num_partitions = int(context.node_config["num-partitions"])
    local = prepare(config.data_path, config.confidence, config.seed)
    users = client_users(partition_id, num_partitions, local.train.shape[0], config.seed)
    return local.train[users], partition_id


def make_client_app(
    overrides: dict[str, Any] | None = None,
    local_data: LocalData = simulation_local_data,
    before_train: Callable[[Context, RecordDict], None] | None = None,
) -> ClientApp:
    """The client's two handlers; ``local_data`` says where its listening log comes from and
    ``before_train`` sees each training message's content first (a deployment's checks)."""
    app = ClientApp()

    @app.query()
    def secagg_keys(msg: Message, context: Context) -> Message:
        """Secure aggregation, first step: a fresh key pair; only the public half leaves."""
        config_record = msg.content[CONFIG_KEY]
        assert isinstance(config_record, ConfigRecord)
        private = new_private_key()
        context.state[SECAGG_STATE] = ConfigRecord(
            {"private_key": private, "round": int(config_record["round"])}  # type: ignore[arg-type]
        )
        key = np.frombuffer(public_key(private), dtype=np.uint8).copy()
        content = RecordDict({ARRAYS_KEY: ArrayRecord(array_dict={PUBLIC_KEY_ARRAY: Array(key)})})
        return Message(content=content, reply_to=msg)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        config: FederatedConfig = config_from_context(context, overrides)
        if before_train is not None:
            before_train(context, msg.content)
        user_items, partition_id = local_data(context, config)
        n_users = int(user_items.shape[0])
        arrays = msg.content[ARRAYS_KEY]
        assert isinstance(arrays, ArrayRecord)
        item_factors = arrays[FACTORS_ARRAY].numpy()
        round_songs = arrays[SONGS_ARRAY].numpy().astype(np.int64)
        update = client_update(
            item_factors, user_items, round_songs, config.alpha, config.regularization
        )
        if partition_id in config.poisoned_clients:
            update = poison(update, config.poison_mode, np.random.default_rng(partition_id))
        reply_arrays = {UPDATE_ARRAY: Array(update)}
        if PUBLIC_KEYS_ARRAY in arrays:
            reply_arrays = {
                MASKED_UPDATE_ARRAY: Array(_secagg_masked(msg, context, update, config, n_users))
            }
        content = RecordDict(
            {
                ARRAYS_KEY: ArrayRecord(array_dict=reply_arrays),
                METRICS_KEY: MetricRecord({WEIGHT_METRIC: n_users}),
            }
        )
        return Message(content=content, reply_to=msg)

    return app


def _secagg_masked(
    msg: Message, context: Context, update: np.ndarray, config: FederatedConfig, weight: int
) -> np.ndarray:
    """Secure aggregation, second step: the update masked against every other participant.

    With differential privacy the client clips its own per-listener update first, since the
    server can no longer see (or clip) individual updates."""
    arrays = msg.content[ARRAYS_KEY]
    round_config = msg.content[CONFIG_KEY]
    state = context.state[SECAGG_STATE]
    assert isinstance(arrays, ArrayRecord) and isinstance(round_config, ConfigRecord)
    assert isinstance(state, ConfigRecord)
    round_index = int(round_config["round"])  # type: ignore[arg-type]
    if int(state["round"]) != round_index:  # type: ignore[arg-type]
        raise RuntimeError("secure aggregation: no key pair for this round")
    if config.dp_epsilon:
        update = clip_to_norm(update.astype(np.float64) / max(1, weight), config.dp_clip_norm)
    return mask_update(
        update,
        bytes(state["private_key"]),  # type: ignore[arg-type]
        int(round_config["secagg-index"]),  # type: ignore[arg-type]
        arrays[PUBLIC_KEYS_ARRAY].numpy(),
        round_index,
    )


# `flwr run` of the simulation layout (one shared data file split by partition-id); the
# SuperLink/SuperNode deployment uses musicrec.federated.deployment instead.
app = make_client_app()
