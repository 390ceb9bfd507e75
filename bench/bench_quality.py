"""Quality beside speed: popularity, ALS and the planted oracle on the generated set.

The same per-user holdout as `musicrec evaluate`; the oracle ranks by the planted taste, the
ceiling of any model. The federated model's figures come from the federated section's curve
run (1M generated rows), reported next to the centralized ALS of the same run.

    python -m bench.bench_quality [--scale 1.0]
"""

from __future__ import annotations

import argparse
import json

from bench.common import RESULTS_DIR, generated_csv, timed, write_section
from musicrec.data.encoding import encode_interactions
from musicrec.data.loading import load_interactions
from musicrec.models.als import DEFAULT_ALS_PARAMS
from musicrec.training import ModelSpec, compare_models, oracle_spec

KEYS = ("recall@10", "ndcg@10", "precision@10", "coverage", "auc")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    path = generated_csv(args.scale)
    encoded = encode_interactions(load_interactions(path, for_training=True))
    oracle = oracle_spec(path, encoded)
    assert oracle is not None, f"{path} has no planted taste beside it"
    specs = [
        ModelSpec("popularity", "popularity", {}),
        ModelSpec("als", "als", dict(DEFAULT_ALS_PARAMS)),
        oracle,
    ]
    with timed() as run:
        report = compare_models(encoded, specs)
    models = {
        name: {key: round(values[key], 4) for key in KEYS}
        for name, values in report["models"].items()
    }
    results: dict[str, object] = {
        "dataset": report["dataset"],
        "split": report["split"],
        "models": models,
        "seconds": round(run["seconds"], 1),
        # > 1: ALS ranks better than popularity; the oracle is the ceiling.
        "ratio": round(models["als"]["recall@10"] / models["popularity"]["recall@10"], 2),
        "als_share_of_oracle": round(models["als"]["recall@10"] / models["oracle"]["recall@10"], 3),
    }
    latest = RESULTS_DIR / "latest.json"
    if latest.exists():
        curve = json.loads(latest.read_text()).get("federated", {}).get("curve")
        if curve:
            results["federated_curve_run"] = {
                "data": curve["data"],
                "recall@10": curve["recall@10"],
                "ndcg@10": curve["ndcg@10"],
            }
    write_section("quality", results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
