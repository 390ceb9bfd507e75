"""`make bench`: every benchmark at one scale, then bench/results/latest.json and latest.md.

Each script runs in its own process (one at a time, so none disturbs another's timings).

    python -m bench.run_all [--scale 1.0] [--only ingest,training,...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

from bench.common import RESULTS_DIR, generated_csv

SECTIONS = ("ingest", "training", "serving", "store", "federated", "privacy", "quality")


def _row(section: str, data: dict[str, Any]) -> list[str]:
    if section == "ingest":
        return [
            "ingest: CSV → validated CSR",
            f"{data['project']['rows_per_s']:,} rows/s, peak {data['project']['peak_rss_mb']} MB",
            f"pandas read_csv+factorize {data['baseline']['rows_per_s']:,} rows/s",
            f"{data['ratio']}× (goal ≥ 3)",
        ]
    if section == "training":
        return [
            "training: `musicrec train` end to end",
            f"{data['end_to_end_seconds']} s ({data['seconds_per_iteration']} s/iteration)",
            f"bare implicit fit {data['bare_implicit_fit_seconds']} s",
            f"overhead {data['overhead_ratio']}× (goal ≤ 1.2)",
        ]
    if section == "serving":
        fast = data["http_precomputed"]
        return [
            "serving: /predict, 32 concurrent clients",
            f"{fast['requests_per_s']:,} req/s, p50 {fast['p50_ms']} ms, p99 {fast['p99_ms']} ms",
            f"in-process recommend {data['in_process_recommend']['calls_per_s']:,} calls/s",
            f"{data['ratio']}× (goal ≥ 5; p99 goal ≤ 20 ms)",
        ]
    if section == "store":
        return [
            "store: import / read-back to CSR",
            f"PostgreSQL {data['postgresql']['import_rows_per_s']:,} / "
            f"{data['postgresql']['read_to_csr_rows_per_s']:,} rows/s",
            f"SQLite {data['sqlite']['import_rows_per_s']:,} / "
            f"{data['sqlite']['read_to_csr_rows_per_s']:,} rows/s",
            f"read vs file {data['postgresql']['read_ratio_vs_file']}×",
        ]
    if section == "federated":
        scale = data.get("scale", {})
        per_round = [
            f"{k.split('_')[1]} clients: {v['seconds_per_round']} s/round"
            for k, v in scale.items()
            if k.startswith("clients_")
        ]
        curve = data.get("curve", {})
        quality = curve.get("recall@10", {})
        return [
            "federated: round cost / quality",
            "; ".join(per_round) or "-",
            f"1 centralized iteration {scale.get('centralized_iteration_seconds', '-')} s; "
            f"curve recall@10 {quality.get('federated', 0):.4f} vs central "
            f"{quality.get('centralized_als', 0):.4f}",
            f"overhead {data.get('overhead_ratio', '-')}× (goal ≤ 5)",
        ]
    if section == "privacy":
        runs = data["runs"]
        return [
            "privacy: federated options on the sample",
            f"plain {runs['plain_10']['recall@10']:.4f} · secagg "
            f"{runs['secagg_10']['recall@10']:.4f} · DP ε=8 "
            f"{runs['dp_eps8_100_of_20']['recall@10']:.4f} · DP ε=1 "
            f"{runs['dp_eps1_100_of_20']['recall@10']:.4f} · 1 attacker: mean "
            f"{runs['mean_50_attacked']['recall@10']:.4f}, clip "
            f"{runs['clip_50_attacked']['recall@10']:.4f}",
            f"centralized ALS {runs['plain_10']['centralized_als_recall@10']:.4f}",
            f"federated/centralized {data['ratio']}×",
        ]
    if section == "quality":
        models = data["models"]
        return [
            "quality: recall@10 / NDCG@10",
            " · ".join(f"{n} {m['recall@10']:.4f}/{m['ndcg@10']:.4f}" for n, m in models.items()),
            f"{data['dataset']['rows']:,} generated rows",
            f"ALS/popularity {data['ratio']}×",
        ]
    return [section, "", "", ""]


def write_markdown() -> None:
    results = json.loads((RESULTS_DIR / "latest.json").read_text())
    machine = results.get("machine", {})
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {machine.get('cores')} cores, {machine.get('memory_gb')} GB, "
        f"Python {machine.get('python')}; "
        + ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items()),
        "",
        "| section | musicrec | baseline (same run) | ratio |",
        "|---|---|---|---|",
    ]
    for section in SECTIONS:
        if section in results:
            lines.append("| " + " | ".join(_row(section, results[section])) + " |")
    (RESULTS_DIR / "latest.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--only", default=",".join(SECTIONS))
    args = parser.parse_args()
    generated_csv(args.scale)
    for section in args.only.split(","):
        started = time.perf_counter()
        print(f"== {section} (scale {args.scale})", flush=True)
        subprocess.run(
            [sys.executable, "-m", f"bench.bench_{section}", "--scale", str(args.scale)],
            check=True,
        )
        print(f"== {section} took {time.perf_counter() - started:.0f} s", flush=True)
    write_markdown()
    print((RESULTS_DIR / "latest.md").read_text())


if __name__ == "__main__":
    main()
