"""Run settings of a federated run: one dataclass, read from Flower's run config."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Flower is heavy to import; the CLI and API only need the dataclass
    from flwr.app import Context

from musicrec.data.encoding import DEFAULT_CONFIDENCE
from musicrec.errors import InvalidParameterError
from musicrec.models.als import DEFAULT_ALS_PARAMS

AGGREGATIONS = ("mean", "clip", "trimmed-mean", "median")


@dataclass
class FederatedConfig:
    """Everything a run needs; keys in Flower's run config use dashes (``clients-per-round``)."""

    data_path: str = ""
    confidence: str = DEFAULT_CONFIDENCE
    seed: int = 42
    rounds: int = 20
    clients_per_round: int = 0  # 0: every client every round
    factors: int = DEFAULT_ALS_PARAMS["factors"]
    alpha: float = DEFAULT_ALS_PARAMS["alpha"]
    regularization: float = DEFAULT_ALS_PARAMS["regularization"]
    learning_rate: float = 0.01
    aggregation: str = "mean"
    clip_norm: float = 0.0  # 0: automatic (3x the round's median update norm)
    dp_epsilon: float = 0.0  # 0: no differential privacy
    dp_delta: float = 0.0  # 0: min(1e-5, 1/(10 N))
    dp_clip_norm: float = 1.0
    secagg: bool = False
    max_upload_bytes: int = 1_000_000
    base_model_path: str = ""  # artifact directory of the model to fine-tune; "" = from scratch
    evaluate_every: int = 1
    min_clients: int = 1  # wait for this many connected clients before round 1
    node_timeout_seconds: float = 120.0
    poisoned_clients: list[int] = field(default_factory=list)  # testing: adversarial clients
    poison_mode: str = "huge"

    def validate(self) -> FederatedConfig:
        if not self.data_path:
            raise InvalidParameterError("a federated run needs a data path")
        if self.rounds < 1 or self.rounds > 10_000:
            raise InvalidParameterError(f"rounds must be between 1 and 10000, got {self.rounds}")
        if self.clients_per_round < 0:
            raise InvalidParameterError("clients per round must be >= 0 (0 = all)")
        if self.aggregation not in AGGREGATIONS:
            raise InvalidParameterError(
                f"unknown aggregation {self.aggregation!r}; use one of {', '.join(AGGREGATIONS)}"
            )
        if self.dp_epsilon < 0 or self.learning_rate <= 0 or self.max_upload_bytes < 1024:
            raise InvalidParameterError(
                "dp epsilon must be >= 0, learning rate > 0, max upload >= 1024 bytes"
            )
        if self.dp_epsilon and self.aggregation != "mean":
            raise InvalidParameterError(
                "differential privacy uses its own clipped mean; "
                "choose aggregation 'mean' with --dp-epsilon"
            )
        if self.secagg and self.aggregation != "mean":
            raise InvalidParameterError(
                "secure aggregation hides individual updates, so a robust rule cannot inspect "
                f"them: use aggregation 'mean' with --secagg (got {self.aggregation!r})"
            )
        return self

    def to_run_config(self) -> dict[str, Any]:
        """As Flower run-config entries (dashed keys, scalar values)."""
        values = asdict(self)
        values["poisoned_clients"] = ",".join(str(i) for i in self.poisoned_clients)
        return {key.replace("_", "-"): value for key, value in values.items()}


def config_from_mapping(mapping: dict[str, Any]) -> FederatedConfig:
    """Build a config from run-config style entries (dashed or underscored keys)."""
    known = {f.name: f for f in fields(FederatedConfig)}
    values: dict[str, Any] = {}
    for raw_key, value in mapping.items():
        key = str(raw_key).replace("-", "_")
        if key not in known:
            continue
        if key == "poisoned_clients" and isinstance(value, str):
            value = [int(x) for x in value.split(",") if x.strip()]
        values[key] = value
    return FederatedConfig(**values)


def config_from_context(context: Context, overrides: dict[str, Any] | None) -> FederatedConfig:
    """The run config of a Flower context, overridden by what the simulation driver set."""
    return config_from_mapping({**dict(context.run_config), **(overrides or {})})
