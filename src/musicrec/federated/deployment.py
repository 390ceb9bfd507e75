"""Federated fine-tuning across machines: Flower's SuperLink and SuperNodes (`flwr run`).

The same round loop and client update as the simulation, with the data where it lives:

- the **ServerApp** runs beside the SuperLink. It loads the base model from the registry
  (run config ``database-url``, ``artifact-dir``, ``base-model``; default the active model),
  fine-tunes its song factors with the connected clients and publishes the result as a new
  registry model whose ``parent_id`` is the base model. It never sees a listening log.
- each **SuperNode** runs the ClientApp on its own data: node config ``data-path`` (its
  listening log, CSV or Parquet) and ``catalogue-path`` (the base model's artifact
  directory, which a device holds anyway to fold in its listener; only its song ids are
  read). ``partition-id``/``num-partitions`` optionally keep a slice of the listeners of a
  shared file (demos and tests). Songs that are not in the catalogue are ignored.

The server sends the catalogue's fingerprint with every round, so a client holding another
catalogue (whose song indices would mean other songs) fails loudly instead of training noise.
"""

from __future__ import annotations

import hashlib
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from flwr.app import ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

from musicrec.data.encoding import (
    EncodedInteractions,
    IdMap,
    confidence_scheme,
    encode_interactions,
    interaction_matrix,
)
from musicrec.data.loading import load_interactions
from musicrec.errors import InvalidParameterError
from musicrec.federated.client_app import make_client_app
from musicrec.federated.config import FederatedConfig, config_from_mapping
from musicrec.federated.data import client_users
from musicrec.federated.runs import create_federated_model
from musicrec.federated.server_app import ServerHooks, run_rounds
from musicrec.federated.task import CONFIG_KEY
from musicrec.models.als import ALSRecommender, fold_in_all
from musicrec.models.artifacts import ARRAYS_FILE, ModelBundle
from musicrec.store import open_store

logger = logging.getLogger("musicrec.federated")
CATALOGUE_CONFIG = "catalogue-sha256"


def catalogue_fingerprint(song_ids: np.ndarray) -> str:
    """sha256 of the catalogue's song ids in index order."""
    return hashlib.sha256("\n".join(map(str, song_ids)).encode("utf-8")).hexdigest()


def read_catalogue(path: str | Path) -> np.ndarray:
    """Song ids in index order, from a model artifact directory (or its arrays.npz)."""
    path = Path(path)
    arrays = path / ARRAYS_FILE if path.is_dir() else path
    if not arrays.is_file():
        raise InvalidParameterError(f"{path}: no model artifact to read the song catalogue from")
    with np.load(arrays, allow_pickle=False) as npz:
        return np.asarray(npz["song_ids"])


@lru_cache(maxsize=4)
def _local_matrix(
    data_path: str,
    catalogue_path: str,
    confidence: str,
    partition: tuple[int, int] | None,
    seed: int,
) -> tuple[sp.csr_matrix, str]:
    local = encode_interactions(load_interactions(data_path, for_training=True))
    catalogue = read_catalogue(catalogue_path)
    catalogue_ids = IdMap(catalogue)
    # Re-code the songs onto the server's catalogue (looked up once per distinct song);
    # events of songs the catalogue does not hold are left out.
    song_codes = catalogue_ids.lookup(local.songs.ids)[local.song_codes]
    known = song_codes >= 0
    on_catalogue = EncodedInteractions(
        user_codes=local.user_codes[known],
        song_codes=song_codes[known].astype(np.int32),
        target=local.target[known],
        users=local.users,
        songs=catalogue_ids,
    )
    matrix = interaction_matrix(on_catalogue, confidence_scheme(confidence))
    if partition is not None:
        users = client_users(partition[0], partition[1], matrix.shape[0], seed)
        matrix = matrix[users]
    return matrix.tocsr(), catalogue_fingerprint(catalogue)


def deployment_local_data(context: Context, config: FederatedConfig) -> tuple[sp.csr_matrix, int]:
    """A SuperNode's own listeners, on the base model's song catalogue."""
    node = context.node_config
    if "data-path" not in node or "catalogue-path" not in node:
        raise InvalidParameterError(
            "a musicrec SuperNode needs --node-config \"data-path='…' catalogue-path='…'\""
        )
    partition = None
    if "partition-id" in node and "num-partitions" in node:
        partition = (int(node["partition-id"]), int(node["num-partitions"]))
    matrix, fingerprint = _local_matrix(
        str(node["data-path"]),
        str(node["catalogue-path"]),
        config.confidence,
        partition,
        config.seed,
    )
    expected = context.state.get(CATALOGUE_CONFIG)
    if isinstance(expected, ConfigRecord) and expected[CATALOGUE_CONFIG] != fingerprint:
        raise InvalidParameterError(
            "this client's catalogue-path holds another song catalogue than the server's base "
            "model; give the base model's artifact directory"
        )
    return matrix, partition[0] if partition else -1


def _remember_catalogue(context: Context, content: Any) -> None:
    record = content.get(CONFIG_KEY)
    if isinstance(record, ConfigRecord) and CATALOGUE_CONFIG in record:
        context.state[CATALOGUE_CONFIG] = ConfigRecord({CATALOGUE_CONFIG: record[CATALOGUE_CONFIG]})


client_app = make_client_app(local_data=deployment_local_data, before_train=_remember_catalogue)


def _run_config(context: Context) -> dict[str, Any]:
    return {str(k): v for k, v in dict(context.run_config).items()}


def publish_deployment_run(grid: Grid, run_config: dict[str, Any]) -> str:
    """Fine-tune the base model with the connected SuperNodes; returns the new model's id."""
    store = open_store(str(run_config["database-url"]), Path(str(run_config["artifact-dir"])))
    try:
        base_id = str(run_config.get("base-model") or "") or store.registry.active_id()
        if not base_id:
            raise InvalidParameterError(
                "no base model: set run config base-model or activate a model first"
            )
        base = store.registry.load(base_id)
        if not isinstance(base.model, ALSRecommender):
            raise InvalidParameterError(f"base model {base_id!r} is not an ALS model")
        params = base.model.params()
        config = config_from_mapping(
            {
                **run_config,
                "data_path": "deployment",
                "factors": base.model.factors,
                "alpha": params["alpha"],
                "regularization": params["regularization"],
            }
        ).validate()
        name = str(run_config.get("model-name") or f"federated-{base_id}")
        partition = f"deployment:{config.min_clients}"
        record = create_federated_model(store, name, config, partition, base_id, None)
        store.registry.mark_training(record.id)
        try:
            return _fine_tune(grid, store, record.id, base, config, base_id)
        except BaseException as exc:
            store.registry.mark_failed(record.id, str(exc) or type(exc).__name__)
            raise
    finally:
        store.close()


def _fine_tune(
    grid: Grid,
    store: Any,
    model_id: str,
    base: ModelBundle,
    config: FederatedConfig,
    base_id: str,
) -> str:
    base_model = base.model
    assert isinstance(base_model, ALSRecommender)

    def on_round(done: int, total: int, row: dict[str, Any]) -> None:
        logger.info(
            "round %d/%d: %d clients, %d bytes up per client, %.2f s",
            done,
            total,
            row["clients_used"],
            row["bytes_up_per_client"],
            row["seconds"],
        )

    hooks = ServerHooks(
        initial_factors=lambda _config: base_model.item_factors.copy(),
        on_round=on_round,
        round_config={CATALOGUE_CONFIG: catalogue_fingerprint(base.songs.ids)},
    )
    result = run_rounds(grid, config, hooks)
    assert result.item_factors is not None
    item_factors = result.item_factors
    # The server holds no listening logs; the base model's own listeners (its central,
    # public training data) get vectors refreshed against the fine-tuned song factors.
    user_factors = fold_in_all(item_factors, base.heard, config.alpha, config.regularization)
    model = ALSRecommender.from_arrays(
        base_model.params(), {"item_factors": item_factors, "user_factors": user_factors}
    )
    bundle = ModelBundle(
        model=model,
        users=base.users,
        songs=base.songs,
        heard=base.heard,
        meta={
            "confidence": base.meta.get("confidence"),
            "parent_id": base_id,
            "federated": {"rounds": config.rounds, "deployment": "superlink"},
        },
    )
    metrics = {
        "rounds": result.rounds,
        "privacy": result.privacy,
        "deployment": {"clients": result.privacy.get("clients"), "mode": "superlink"},
    }
    published = store.registry.publish(model_id, bundle, metrics)
    logger.info("published %s (parent %s)", published.id, base_id)
    return str(published.id)


server_app = ServerApp()


@server_app.main()
def main(grid: Grid, context: Context) -> None:
    publish_deployment_run(grid, _run_config(context))
