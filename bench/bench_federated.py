"""Federated ALS on Flower's simulation engine: the quality curve and the cost of a round.

1. curve: 1,000,000 generated rows (10,000 listeners, 100,000 songs), 2,000 clients (silos),
   200 sampled per round. The base model is a centralized ALS trained on the training rows
   of a "public" 20% of the listeners; the clients then fine-tune it with everyone's private
   data. Per round: recall@10 / NDCG@10 on the per-user holdout, wall time, bytes per client.
   Written to bench/results/federated_curve.csv and .png, beside the lines of popularity,
   the public-only base, a centralized ALS on all training rows and the planted oracle.
2. scale: seconds per round at 1,000 and 10,000 clients (100 sampled per round) on the
   KKBox-sized set, against one centralized ALS iteration over the same training matrix
   (`overhead_ratio` = round / iteration; the goal is <= 5 at 1,000 clients).

    python -m bench.bench_federated [--scale 1.0] [--curve-rounds 20] [--skip-scale] [--replot]
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from bench.common import CACHE_DIR, RESULTS_DIR, generated_csv, timed, write_section
from musicrec.data.synthetic import SyntheticSpec, generate
from musicrec.federated.config import FederatedConfig
from musicrec.federated.data import prepare
from musicrec.federated.simulation import run_federated
from musicrec.models.als import DEFAULT_ALS_PARAMS, ALSRecommender
from musicrec.models.artifacts import ModelBundle, save_bundle

CURVE_SPEC = SyntheticSpec(rows=1_000_000, users=10_000, songs=100_000, seed=42)
PUBLIC_SHARE = 0.2


def curve_data() -> Path:
    CACHE_DIR.mkdir(exist_ok=True)
    path = CACHE_DIR / "kkbox-synthetic-1m.csv"
    if not path.exists():
        generate(path, CURVE_SPEC)
    return path


def _public_base(path: Path, config: FederatedConfig, directory: Path) -> Path:
    """A centralized ALS on the training rows of a random 20% of listeners (the public part)."""
    data = prepare(str(path), config.confidence, config.seed)
    rng = np.random.default_rng(7)
    public = rng.random(data.train.shape[0]) < PUBLIC_SHARE
    keep = sp.diags(public.astype(np.float32))
    train = (keep @ data.train).tocsr()
    heard = (keep @ data.heard).tocsr()
    train.eliminate_zeros()
    heard.eliminate_zeros()
    model = ALSRecommender(**{**DEFAULT_ALS_PARAMS, "factors": config.factors})
    model.fit(train)
    bundle = ModelBundle(
        model=model, users=data.encoded.users, songs=data.encoded.songs, heard=heard
    )
    return save_bundle(bundle, directory / "public-base")


def _plot(rows: list[dict[str, Any]], lines: dict[str, float], out: Path) -> None:
    """recall@10 per round against the reference lines; below, seconds and bytes per round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, (quality, cost) = plt.subplots(
        2, 1, figsize=(8, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]}
    )
    rounds = [int(row["round"]) for row in rows]
    quality.plot(
        rounds, [row["recall@10"] for row in rows], marker="o", label="federated ALS (0 = base)"
    )
    styles = {"oracle": ":", "als": "--", "base": "-.", "popularity": (0, (1, 3))}
    names = {
        "oracle": "planted oracle",
        "als": "centralized ALS (all data)",
        "base": "base: public 20% only",
        "popularity": "popularity",
    }
    for key, value in lines.items():
        quality.axhline(
            value, linestyle=styles[key], color="grey", label=f"{names[key]} {value:.4f}"
        )
    quality.set_ylabel("recall@10 (per-user holdout)")
    quality.set_title("Federated fine-tuning, 1M generated rows, 2,000 clients, 200 per round")
    quality.legend(fontsize=8)

    trained = [row for row in rows if row.get("seconds") not in (None, "")]
    cost.bar([int(row["round"]) for row in trained], [float(row["seconds"]) for row in trained])
    cost.set_ylabel("seconds per round")
    cost.set_xlabel("round")
    cost.xaxis.set_major_locator(MaxNLocator(integer=True))
    if trained:
        up = max(int(row["bytes_up_per_client"]) for row in trained)
        down = max(int(row["bytes_down_per_client"]) for row in trained)
        cost.set_title(
            f"per client per round: up {up / 1e6:.2f} MB, down {down / 1e6:.1f} MB", fontsize=9
        )
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)


def replot() -> None:
    """Redraw the PNG from the stored CSV and latest.json (no rerun)."""
    with open(RESULTS_DIR / "federated_curve.csv", newline="") as handle:
        rows = [
            {k: (float(v) if v not in ("", None) else None) for k, v in row.items()}
            for row in csv.DictReader(handle)
        ]
    curve = json.loads((RESULTS_DIR / "latest.json").read_text())["federated"]["curve"]
    _plot(rows, _reference_lines(curve["recall@10"]), RESULTS_DIR / "federated_curve.png")


def _reference_lines(recall: dict[str, float]) -> dict[str, float]:
    """The plot's horizontal lines, from the curve's recall@10 figures."""
    return {
        "oracle": recall["oracle"],
        "als": recall["centralized_als"],
        "base": recall["base_public_only"],
        "popularity": recall["popularity"],
    }


def run_curve(rounds: int) -> dict[str, Any]:
    path = curve_data()
    config = FederatedConfig(
        data_path=str(path), rounds=rounds, clients_per_round=200, learning_rate=0.01
    )
    with tempfile.TemporaryDirectory() as tmp:
        config.base_model_path = str(_public_base(path, config, Path(tmp)))
        base_metrics = _base_recall(config)
        with timed() as run:
            report, _ = run_federated(config, "silo:2000")
    # Round 0 is the base model the clients start from.
    rows = [
        {"round": 0, "recall@10": base_metrics["recall@10"], "ndcg@10": base_metrics["ndcg@10"]}
    ]
    rows += report["rounds"]
    from musicrec.training import compare_models, oracle_spec

    encoded = prepare(config.data_path, config.confidence, config.seed).encoded
    spec = oracle_spec(path, encoded)
    assert spec is not None, f"{path} has no planted taste beside it"
    oracle = compare_models(encoded, [spec], seed=config.seed)["models"]["oracle"]
    models = report["models"]
    final = models["federated"]
    recall = {
        "federated": final["recall@10"],
        "base_public_only": base_metrics["recall@10"],
        "centralized_als": models["als"]["recall@10"],
        "popularity": models["popularity"]["recall@10"],
        "oracle": oracle["recall@10"],
    }
    lines = _reference_lines(recall)
    RESULTS_DIR.mkdir(exist_ok=True)
    with open(RESULTS_DIR / "federated_curve.csv", "w", newline="") as handle:
        fields = [
            "round",
            "recall@10",
            "ndcg@10",
            "seconds",
            "bytes_up_per_client",
            "bytes_down_per_client",
            "clients_used",
        ]
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    _plot(rows, lines, RESULTS_DIR / "federated_curve.png")
    return {
        "data": {"rows": CURVE_SPEC.rows, "users": CURVE_SPEC.users, "songs": CURVE_SPEC.songs},
        "clients": 2000,
        "clients_per_round": 200,
        "rounds": rounds,
        "seconds": round(run["seconds"], 1),
        "seconds_per_round_median": round(float(np.median([r["seconds"] for r in rows[1:]])), 2),
        "bytes_up_per_client": rows[-1]["bytes_up_per_client"],
        "bytes_down_per_client": rows[-1]["bytes_down_per_client"],
        "recall@10": recall,
        "ndcg@10": {
            "federated": final["ndcg@10"],
            "centralized_als": models["als"]["ndcg@10"],
            "popularity": models["popularity"]["ndcg@10"],
            "oracle": oracle["ndcg@10"],
        },
        "federated_vs_centralized": round(final["recall@10"] / models["als"]["recall@10"], 3),
        "csv": "bench/results/federated_curve.csv",
        "png": "bench/results/federated_curve.png",
    }


def _base_recall(config: FederatedConfig) -> dict[str, float]:
    """recall@10 / NDCG@10 of the public-only base model, measured like every round."""
    from musicrec.federated.simulation import ranking_evaluator
    from musicrec.models.artifacts import load_bundle

    base = load_bundle(config.base_model_path)
    assert isinstance(base.model, ALSRecommender)
    data = prepare(config.data_path, config.confidence, config.seed)
    return ranking_evaluator(data, config)(base.model.item_factors)


def run_scale(scale: float, populations: list[int], rounds: int = 3) -> dict[str, Any]:
    path = generated_csv(scale)
    config = FederatedConfig(data_path=str(path))
    data = prepare(str(path), config.confidence, config.seed)
    # One centralized iteration on the same training matrix (after one warm-up fit).
    model = ALSRecommender(**{**DEFAULT_ALS_PARAMS, "iterations": 1})
    model.fit(data.train)
    with timed() as iteration:
        model.fit(data.train)
    results: dict[str, Any] = {
        "rows": int(data.encoded.n_rows),
        "songs": len(data.encoded.songs),
        "centralized_iteration_seconds": round(iteration["seconds"], 2),
    }
    for population in populations:
        run_config = FederatedConfig(
            data_path=str(path),
            rounds=rounds,
            clients_per_round=100,
            evaluate_every=10_000,  # only the last round is evaluated
        )
        started = time.perf_counter()
        report, _ = run_federated(run_config, f"silo:{population}", compare=False)
        # Rounds after the first: the first also starts the Ray workers and loads their data.
        # The last round includes the holdout evaluation, so it is left out as well.
        steady = [r["seconds"] for r in report["rounds"][1:-1]] or [
            r["seconds"] for r in report["rounds"]
        ]
        seconds = float(np.median(steady))
        results[f"clients_{population}"] = {
            "clients_per_round": 100,
            "seconds_per_round": round(seconds, 2),
            "bytes_up_per_client": report["rounds"][-1]["bytes_up_per_client"],
            "bytes_down_per_client": report["rounds"][-1]["bytes_down_per_client"],
            "wall_seconds": round(time.perf_counter() - started, 1),
            "overhead_ratio": round(seconds / iteration["seconds"], 2),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--curve-rounds", type=int, default=20)
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-curve", action="store_true")
    parser.add_argument("--replot", action="store_true", help="only redraw the PNG")
    args = parser.parse_args()
    if args.replot:
        replot()
        return
    results: dict[str, Any] = {}
    if not args.skip_curve:
        results["curve"] = run_curve(args.curve_rounds)
    if not args.skip_scale:
        populations = [1000, 10_000] if args.scale >= 0.5 else [100, 1000]
        results["scale"] = run_scale(args.scale, populations)
        first = results["scale"][f"clients_{populations[0]}"]
        results["overhead_ratio"] = first["overhead_ratio"]
        results["goal"] = {"overhead_ratio_at_most": 5, "met": first["overhead_ratio"] <= 5}
    write_section("federated", results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
