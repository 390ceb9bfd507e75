"""Shared helpers of the benchmark scripts: generated data cache, timing, machine facts."""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from musicrec.data.synthetic import FULL_KKBOX, SyntheticSpec, generate

BENCH_DIR = Path(__file__).resolve().parent
CACHE_DIR = BENCH_DIR / ".cache"
RESULTS_DIR = BENCH_DIR / "results"


def scaled_spec(scale: float, seed: int = 42) -> SyntheticSpec:
    """KKBox-sized synthetic data (scale 1.0 = 7,377,418 rows, 30,755 users, 359,966 songs)."""
    return SyntheticSpec(
        rows=round(FULL_KKBOX["rows"] * scale),
        users=round(FULL_KKBOX["users"] * scale),
        songs=round(FULL_KKBOX["songs"] * scale),
        seed=seed,
    )


def generated_csv(scale: float) -> Path:
    """The generated data set for a scale, made once and cached under bench/.cache."""
    CACHE_DIR.mkdir(exist_ok=True)
    path = CACHE_DIR / f"kkbox-synthetic-{scale:g}.csv"
    if not path.exists():
        started = time.perf_counter()
        generate(path, scaled_spec(scale))
        print(f"generated {path.name} in {time.perf_counter() - started:.1f} s", flush=True)
    return path


@contextmanager
def timed() -> Iterator[dict[str, float]]:
    """with timed() as t: ...; then t['seconds']."""
    result: dict[str, float] = {}
    started = time.perf_counter()
    yield result
    result["seconds"] = time.perf_counter() - started


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict[str, Any]:
    versions = {}
    for name in (
        "musicrec",
        "implicit",
        "numpy",
        "scipy",
        "pyarrow",
        "pandas",
        "sqlalchemy",
        "psycopg",
        "flwr",
        "fastapi",
    ):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(pages / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def write_section(name: str, payload: dict[str, Any]) -> Path:
    """Merge one section into bench/results/latest.json (other sections are kept)."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / "latest.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results["machine"] = machine()
    results[name] = payload
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(path)
    return path
