"""Shared fixtures: the bundled sample, small known matrices, a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
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
