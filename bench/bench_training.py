"""End-to-end `musicrec train` against a bare `implicit` fit, same data and params.

Each side runs --repeats times (default 3), alternating; the medians are compared.
End to end: the CLI in a fresh process, reading the CSV, validating, encoding, fitting
(factors 64, 15 iterations), saving the artifact and publishing it in a SQLite registry.
Baseline in the same run: `implicit.als.AlternatingLeastSquares.fit` on a CSR built
beforehand (the same confidence values), in a fresh process too. `overhead_ratio` is end to
end over bare (goal <= 1.2).

    python -m bench.bench_training [--scale 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import generated_csv, write_section

PARAMS = {"factors": 64, "iterations": 15, "regularization": 0.05, "alpha": 20.0}

_BARE = """
import json, sys, time
import numpy as np
from threadpoolctl import threadpool_limits
from implicit.als import AlternatingLeastSquares
from musicrec.data.encoding import DEFAULT_CONFIDENCE, confidence_scheme, encode_interactions
from musicrec.data.encoding import interaction_matrix
from musicrec.data.loading import load_interactions

params = json.loads(sys.argv[2])
matrix = interaction_matrix(
    encode_interactions(load_interactions(sys.argv[1], for_training=True)),
    confidence_scheme(DEFAULT_CONFIDENCE),
)
matrix.data = (1.0 + params["alpha"] * matrix.data).astype(np.float32)
with threadpool_limits(limits=1, user_api="blas"):
    model = AlternatingLeastSquares(
        factors=params["factors"], iterations=params["iterations"],
        regularization=params["regularization"], alpha=1.0, random_state=42,
        calculate_training_loss=False,
    )
    started = time.perf_counter()
    model.fit(matrix, show_progress=False)
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def _bare_seconds(path: Path) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _BARE, str(path), json.dumps(PARAMS)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def _end_to_end(path: Path) -> tuple[float, dict[str, Any], float]:
    """Seconds of `musicrec train --register` in a fresh process, its report, artifact MB."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "MUSICREC_DATABASE_URL": f"sqlite:///{tmp}/registry.db",
            "MUSICREC_ARTIFACT_DIR": f"{tmp}/artifacts",
        }
        command = [sys.executable, "-m", "musicrec.cli", "train", "--data", str(path)]
        command += ["--register", "--name", "bench"]
        for key, value in PARAMS.items():
            command += [f"--{key}", str(value)]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
        seconds = time.perf_counter() - started
        artifact_mb = sum(f.stat().st_size for f in Path(tmp, "artifacts").rglob("*")) / 2**20
    return seconds, json.loads(done.stdout), artifact_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    path = generated_csv(args.scale)
    # Alternate the two and take medians: one run of each differs by 15% between runs.
    bare_runs, end_runs, fit_runs, matrix_runs = [], [], [], []
    for _ in range(args.repeats):
        bare_runs.append(_bare_seconds(path))
        seconds, report, artifact_mb = _end_to_end(path)
        end_runs.append(seconds)
        fit_runs.append(float(report["fit_seconds"]))
        matrix_runs.append(float(report.get("matrix_seconds", 0.0)))
    bare, end_to_end, fit, matrix = (
        float(np.median(x)) for x in (bare_runs, end_runs, fit_runs, matrix_runs)
    )
    results = {
        "rows": report["data"]["rows"],
        "params": PARAMS,
        "repeats": args.repeats,
        "end_to_end_seconds": round(end_to_end, 2),
        "end_to_end_runs": [round(x, 2) for x in end_runs],
        "end_to_end_fit_seconds": round(fit, 3),
        "end_to_end_matrix_seconds": round(matrix, 3),
        "bare_implicit_fit_seconds": round(bare, 2),
        "bare_implicit_runs": [round(x, 2) for x in bare_runs],
        "seconds_per_iteration": round(bare / PARAMS["iterations"], 3),
        "artifact_mb": round(artifact_mb, 1),
        "overhead_ratio": round(end_to_end / bare, 2),
        # The CLI process also pays Python start-up and imports (about 2 s): reported apart.
        "fit_overhead_ratio": round(fit / bare, 2),
    }
    results["ratio"] = results["overhead_ratio"]
    results["goal"] = {"overhead_ratio_at_most": 1.2, "met": results["overhead_ratio"] <= 1.2}
    write_section("training", results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
