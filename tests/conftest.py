"""Shared fixtures: the bundled sample, small known matrices, a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CSV = PROJECT_ROOT / "data" / "sample" / "kkbox_train_10k.csv"
HEADER = "msno,song_id,source_system_tab,source_screen_name,source_type,target\n"


@pytest.fixture
def sample_csv() -> Path:
    return SAMPLE_CSV


@pytest.fixture
def write_csv(tmp_path: Path):
    """Write text (or bytes) to a CSV file in tmp_path and return its path."""

    def _write(content: str | bytes, name: str = "train.csv") -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return _write


@pytest.fixture
def checkerboard() -> sp.csr_matrix:
    """50 users x 50 songs: even users played even songs, odd users odd songs.

    The right answer is known by construction: a good model recommends an even user only even
    songs (and vice versa).
    """
    users, songs = np.meshgrid(np.arange(50), np.arange(50), indexing="ij")
    mask = (users % 2) == (songs % 2)
    # Leave one song of each user out so there is something to recommend.
    mask[np.arange(50), (np.arange(50) + 10) % 50] = False
    rows, cols = np.nonzero(mask)
    return sp.csr_matrix((np.ones(rows.shape[0], dtype=np.float32), (rows, cols)), shape=(50, 50))


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    """Run the real `musicrec` console entry point in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "musicrec.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd or PROJECT_ROOT,
        timeout=600,
    )


# -- databases: every storage test runs against SQLite and PostgreSQL -----------------------

POSTGRES_URL = os.environ.get(
    "MUSICREC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_available() -> str | None:
    """None when PostgreSQL answers, else the reason."""
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {str(exc).splitlines()[0]}"


@pytest.fixture(scope="session")
def postgres_ready() -> None:
    reason = _postgres_available()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI requires PostgreSQL)")
        pytest.skip(reason)


@pytest.fixture
def postgres_url(postgres_ready) -> Iterator[str]:
    """A fresh schema in the `test` database, dropped afterwards."""
    import uuid

    import sqlalchemy

    schema = f"mr_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(database_url, tmp_path):
    from musicrec.store import open_store

    opened = open_store(database_url, tmp_path / "artifacts")
    yield opened
    opened.close()
