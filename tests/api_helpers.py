"""Helpers shared by the API tests: settings for a throwaway service, polling, free ports."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from musicrec.config import Settings


def api_settings(tmp: Path, database_url: str | None = None, **extra: Any) -> Settings:
    return Settings(
        database_url=database_url or f"sqlite:///{tmp / 'registry.db'}",
        artifact_dir=tmp / "artifacts",
        job_poll_seconds=0.1,
        **extra,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_job(client: Any, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still running after {timeout} s")
