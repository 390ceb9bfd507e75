"""Dataset import into SQLite and PostgreSQL, and read-back to a training CSR, in rows/s.

Baseline in the same run: reading the same CSV file into validated Arrow columns with the
project's loader (what training from a file costs). Usage:

    python bench/bench_store.py [--scale 1.0] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import uuid
from pathlib import Path

import sqlalchemy

from bench.common import generated_csv, peak_rss_mb, timed, write_section
from musicrec.data.encoding import (
    DEFAULT_CONFIDENCE,
    confidence_scheme,
    encode_interactions,
    interaction_matrix,
)
from musicrec.data.loading import load_interactions
from musicrec.store import open_store

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def measure(url: str, table, rows: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as artifacts:
        store = open_store(url, Path(artifacts))
        with timed() as imported:
            store.datasets.import_table("bench", table, source="bench")
        with timed() as read:
            back = store.datasets.read_table("bench")
            matrix = interaction_matrix(
                encode_interactions(back), confidence_scheme(DEFAULT_CONFIDENCE)
            )
        assert back.num_rows == rows and matrix.nnz > 0
        store.close()
    return {
        "import_seconds": round(imported["seconds"], 2),
        "import_rows_per_s": round(rows / imported["seconds"]),
        "read_to_csr_seconds": round(read["seconds"], 2),
        "read_to_csr_rows_per_s": round(rows / read["seconds"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    args = parser.parse_args()

    path = generated_csv(args.scale)
    with timed() as loaded:
        table = load_interactions(path)
    rows = table.num_rows
    results: dict[str, object] = {
        "rows": rows,
        "file_read_rows_per_s": round(rows / loaded["seconds"]),
    }
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = measure(f"sqlite:///{tmp}/bench.db", table, rows)

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    try:
        results["postgresql"] = measure(
            f"{args.postgres_url}?options=-csearch_path%3D{schema}", table, rows
        )
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
    for backend in ("sqlite", "postgresql"):
        section = results[backend]
        assert isinstance(section, dict)
        # Ratio of the database read-back against reading the CSV file: < 1 means slower.
        section["read_ratio_vs_file"] = round(
            section["read_to_csr_rows_per_s"] / results["file_read_rows_per_s"], 3
        )
    results["peak_rss_mb"] = round(peak_rss_mb())
    write_section("store", results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
