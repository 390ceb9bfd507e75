"""What each privacy and robustness option of a federated run costs, on the real sample.

Every run uses the bundled KKBox sample, the same per-user holdout and factors 32, 20 rounds
from scratch, and is compared with the plain run of the same partition:

- secure aggregation (10 silos): same model, 8 bytes per value instead of 4;
- differential privacy at epsilon 8 and 1 (100 silos, 20 sampled per round, so the
  sampling rate amplifies privacy);
- robust rules (50 silos) with one adversarial client, against the plain mean under the same
  attack.

    python -m bench.bench_privacy
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from bench.common import BENCH_DIR, timed, write_section
from musicrec.federated.config import FederatedConfig
from musicrec.federated.simulation import run_federated

SAMPLE = BENCH_DIR.parent / "data" / "sample" / "kkbox_train_10k.csv"
ROUNDS = 20
POISONED = [3]


def _run(partition: str, compare: bool = False, **options: Any) -> dict[str, Any]:
    config = FederatedConfig(data_path=str(SAMPLE), rounds=ROUNDS, **options)
    with timed() as run:
        report, _ = run_federated(config, partition, compare=compare)
    last = report["rounds"][-1]
    result: dict[str, Any] = {
        "partition": partition,
        "recall@10": round(report["models"]["federated"]["recall@10"], 4),
        "ndcg@10": round(report["models"]["federated"]["ndcg@10"], 4),
        "bytes_up_per_client": last["bytes_up_per_client"],
        "seconds": round(run["seconds"], 1),
    }
    privacy = report["privacy"]
    if privacy.get("epsilon") is not None:
        result["epsilon"] = round(privacy["epsilon"], 2)
        result["delta"] = privacy["delta"]
        result["noise_multiplier"] = round(privacy["noise_multiplier"], 3)
    if compare:
        result["centralized_als_recall@10"] = round(report["models"]["als"]["recall@10"], 4)
        result["popularity_recall@10"] = round(report["models"]["popularity"]["recall@10"], 4)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="ignored: the sample is fixed")
    parser.parse_args()
    runs: dict[str, dict[str, Any]] = {}
    runs["plain_10"] = _run("silo:10", compare=True)
    runs["secagg_10"] = _run("silo:10", secagg=True)
    runs["plain_100_of_20"] = _run("silo:100", clients_per_round=20)
    for epsilon in (8.0, 1.0):
        runs[f"dp_eps{epsilon:g}_100_of_20"] = _run(
            "silo:100", clients_per_round=20, dp_epsilon=epsilon
        )
    runs["plain_50"] = _run("silo:50")
    attack = {"poisoned_clients": POISONED, "poison_mode": "adversarial"}
    runs["mean_50_attacked"] = _run("silo:50", **attack)
    for rule in ("clip", "trimmed-mean", "median"):
        runs[f"{rule}_50_clean"] = _run("silo:50", aggregation=rule)
        runs[f"{rule}_50_attacked"] = _run("silo:50", aggregation=rule, **attack)

    plain = runs["plain_10"]
    results: dict[str, Any] = {
        "data": "bundled KKBox sample (10,000 rows), per-user holdout, factors 32",
        "rounds": ROUNDS,
        "runs": runs,
        # > 0.9 is the federated acceptance bar: plain federated vs centralized ALS.
        "ratio": round(plain["recall@10"] / plain["centralized_als_recall@10"], 3),
        "secagg_upload_ratio": round(
            runs["secagg_10"]["bytes_up_per_client"] / plain["bytes_up_per_client"], 2
        ),
    }
    write_section("privacy", results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
