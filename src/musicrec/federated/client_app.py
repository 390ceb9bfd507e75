"""The Flower ClientApp: what a device (or silo) does with a training message.

It receives the song factors and the round's song set, solves its listeners' vectors locally
and replies with the gradient block over the round's songs plus one metric, its listener
count. Raw interactions, user vectors and the list of played songs stay on the client.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from musicrec.federated.config import FederatedConfig, config_from_context
from musicrec.federated.data import client_users, prepare
from musicrec.federated.task import (
    ARRAYS_KEY,
    FACTORS_ARRAY,
    METRICS_KEY,
    SONGS_ARRAY,
    UPDATE_ARRAY,
    WEIGHT_METRIC,
    client_update,
)


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


def make_client_app(overrides: dict[str, Any] | None = None) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        config: FederatedConfig = config_from_context(context, overrides)
        partition_id = int(context.node_config["partition-id"])
        num_partitions = int(context.node_config["num-partitions"])
        local = prepare(config.data_path, config.confidence, config.seed)
        users = client_users(partition_id, num_partitions, local.train.shape[0], config.seed)
        arrays = msg.content[ARRAYS_KEY]
        assert isinstance(arrays, ArrayRecord)
        item_factors = arrays[FACTORS_ARRAY].numpy()
        round_songs = arrays[SONGS_ARRAY].numpy().astype(np.int64)
        update = client_update(
            item_factors, local.train[users], round_songs, config.alpha, config.regularization
        )
        if partition_id in config.poisoned_clients:
            update = poison(update, config.poison_mode, np.random.default_rng(partition_id))
        content = RecordDict(
            {
                ARRAYS_KEY: ArrayRecord(array_dict={UPDATE_ARRAY: Array(update)}),
                METRICS_KEY: MetricRecord({WEIGHT_METRIC: int(users.shape[0])}),
            }
        )
        return Message(content=content, reply_to=msg)

    return app


# For `flwr run` deployments: configuration comes from the run config alone.
app = make_client_app()
