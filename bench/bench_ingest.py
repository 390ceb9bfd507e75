"""CSV -> validated CSR, rows/s and peak memory, against plain pandas read_csv + factorize.

Each path runs in a fresh process so its peak resident memory is its own.

    python -m bench.bench_ingest [--scale 1.0]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time
from pathlib import Path
from typing import Any

from bench.common import generated_csv, write_section


def _project(path: str) -> dict[str, Any]:
    from musicrec.data.encoding import (
        DEFAULT_CONFIDENCE,
        confidence_scheme,
        encode_interactions,
        interaction_matrix,
    )
    from musicrec.data.loading import load_interactions

    started = time.perf_counter()
    encoded = encode_interactions(load_interactions(path, for_training=True))
    matrix = interaction_matrix(encoded, confidence_scheme(DEFAULT_CONFIDENCE))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": encoded.n_rows, "nnz": int(matrix.nnz)}


def _pandas(path: str) -> dict[str, Any]:
    import pandas as pd

    started = time.perf_counter()
    frame = pd.read_csv(path)
    pd.factorize(frame["msno"])
    pd.factorize(frame["song_id"])
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": len(frame)}


def _child(name: str, path: str, queue: Any) -> None:
    result = {"project": _project, "pandas": _pandas}[name](path)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    queue.put(result)


def isolated(name: str, path: Path) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(name, str(path), queue))
    process.start()
    result: dict[str, Any] = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    path = generated_csv(args.scale)
    isolated("project", path)  # warm the page cache so both read from memory
    project = isolated("project", path)
    baseline = isolated("pandas", path)
    rows = project["rows"]
    results = {
        "rows": rows,
        "file_mb": round(path.stat().st_size / 2**20),
        "project": {
            "what": "pyarrow CSV + validation + id encoding + CSR",
            "seconds": round(project["seconds"], 2),
            "rows_per_s": round(rows / project["seconds"]),
            "peak_rss_mb": project["peak_rss_mb"],
        },
        "baseline": {
            "what": "pandas.read_csv + factorize(msno, song_id)",
            "seconds": round(baseline["seconds"], 2),
            "rows_per_s": round(rows / baseline["seconds"]),
            "peak_rss_mb": baseline["peak_rss_mb"],
        },
    }
    results["ratio"] = round(baseline["seconds"] / project["seconds"], 2)
    results["goal"] = {"ratio_at_least": 3, "met": results["ratio"] >= 3}
    write_section("ingest", results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
