"""A federated run tied to the store: its data, its base model and its result model.

The data is a file or a stored dataset (exported to a temporary Parquet file, which is what
the simulated clients read); the base model comes from the registry; the result is published
as a new model whose ``parent_id`` is the base model, with the run's per-round curve and its
privacy figures in the model's metrics.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from musicrec.errors import InvalidParameterError
from musicrec.federated.config import FederatedConfig
from musicrec.federated.simulation import RoundCallback, run_federated
from musicrec.store import Store
from musicrec.store.registry import ModelRecord

FEDERATED_ID_PREFIX = "fedals"


@contextmanager
def dataset_file(store: Store, dataset: str) -> Iterator[Path]:
    """A stored dataset as a temporary Parquet file (removed afterwards)."""
    table = store.datasets.read_table(dataset)
    directory = store.registry.artifact_dir / ".federated-tmp" / uuid.uuid4().hex
    directory.mkdir(parents=True)
    try:
        path = directory / f"{dataset}.parquet"
        pq.write_table(table, path)
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def resolve_base_model(store: Store, base_model_id: str | None) -> str:
    """The artifact directory of a ready ALS model of the registry ("" for from scratch)."""
    if not base_model_id:
        return ""
    record = store.registry.get(base_model_id)
    if record.type != "als":
        raise InvalidParameterError(
            f"base model {base_model_id!r} is a {record.type} model; federated fine-tuning "
            "needs an ALS model"
        )
    store.registry.load(base_model_id)  # verifies the artifact (marks it broken if not)
    return str(store.registry.artifact_path(record))


def create_federated_model(
    store: Store,
    name: str,
    config: FederatedConfig,
    partition: str,
    base_model_id: str | None,
    dataset: str | None,
) -> ModelRecord:
    dataset_id = store.datasets.get(dataset).id if dataset else None
    return store.registry.create(
        name,
        "als",
        {
            "factors": config.factors,
            "alpha": config.alpha,
            "regularization": config.regularization,
            "seed": config.seed,
        },
        dataset_id=dataset_id,
        parent_id=base_model_id or None,
        info={
            "federated": {
                "partition": partition,
                "rounds": config.rounds,
                "clients_per_round": config.clients_per_round,
                "aggregation": config.aggregation,
                "dp_epsilon": config.dp_epsilon,
                "secagg": config.secagg,
            },
            "dataset": dataset,
            "confidence": config.confidence,
        },
        id_prefix=FEDERATED_ID_PREFIX,
    )


def federated_model_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """What the registry keeps: the federated model's metrics, its curve, privacy, baselines."""
    models = report["models"]
    metrics: dict[str, Any] = dict(models["federated"])
    metrics["rounds"] = report["rounds"]
    metrics["privacy"] = report["privacy"]
    metrics["comparison"] = {
        name: {"recall@10": values["recall@10"], "ndcg@10": values["ndcg@10"]}
        for name, values in models.items()
        if name != "federated"
    }
    if "seed_style" in report:
        metrics["comparison"]["seed_style"] = report["seed_style"]
    if "split" in report:
        metrics["split"] = report["split"]
    metrics["warnings"] = report.get("warnings", [])
    metrics["notes"] = report.get("notes", [])
    return metrics


def run_and_publish(
    store: Store,
    config: FederatedConfig,
    partition: str,
    model_id: str,
    dataset: str | None = None,
    on_round: RoundCallback | None = None,
    before_commit: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], ModelRecord]:
    """Run the simulation for an existing ``queued`` model row and publish its result."""
    record = store.registry.get(model_id)
    config.base_model_path = resolve_base_model(store, record.parent_id)
    store.registry.mark_training(model_id)

    def run() -> tuple[dict[str, Any], Any]:
        return run_federated(config, partition, on_round=on_round)

    if dataset:
        with dataset_file(store, dataset) as path:
            config.data_path = str(path)
            report, bundle = run()
    else:
        report, bundle = run()
    bundle.meta["dataset"] = dataset or config.data_path
    bundle.meta["parent_id"] = record.parent_id
    published = store.registry.publish(
        model_id, bundle, federated_model_metrics(report), before_commit=before_commit
    )
    report["model_id"] = published.id
    report["parent_id"] = published.parent_id
    return report, published
