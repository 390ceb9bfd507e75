"""/predict over HTTP with 32 concurrent clients vs in-process `recommend` calls, same model.

The model has the generated set's listeners and songs (359,966 at scale 1.0) and is trained
on it. The API runs as a real uvicorn process with that model active; the load generator is
wrk when it is installed (`apt-get install wrk`; `make bench` does), else an asyncio httpx
client in this process. Either shares the 2 cores with the server, so the figures are a
floor. Measured twice: with the precomputed top lists (the default) and with
live scoring of every request (MUSICREC_PRECOMPUTE_TOP_N=0). Baseline in the same run: one
in-process `model.recommend` per request, sequentially.

    python -m bench.bench_serving [--scale 1.0] [--requests 4000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.common import generated_csv, timed, write_section
from musicrec.data.encoding import encode_interactions
from musicrec.data.loading import load_interactions
from musicrec.store import open_store
from musicrec.training import train_bundle

PARAMS = {"factors": 64, "iterations": 15}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _percentiles(latencies: list[float]) -> dict[str, float]:
    values = np.asarray(latencies) * 1000
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p90_ms": round(float(np.percentile(values, 90)), 2),
        "p99_ms": round(float(np.percentile(values, 99)), 2),
    }


async def _load(port: int, users: np.ndarray, concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    queue = list(map(int, users))
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30
    ) as client:

        async def worker() -> None:
            nonlocal errors
            while queue:
                user = queue.pop()
                started = time.perf_counter()
                response = await client.post("/predict", params={"user_id": user, "n": 10})
                latencies.append(time.perf_counter() - started)
                errors += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": round(len(latencies) / seconds, 1),
        **_percentiles(latencies),
    }


_WRK_SCRIPT = """
math.randomseed(7)
request = function()
  return wrk.format("POST", "/predict?n=10&user_id=" .. math.random(0, %d))
end
"""


def _unit_ms(text: str) -> float:
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def _load_wrk(port: int, n_users: int, concurrency: int, seconds: int) -> dict[str, Any]:
    """wrk (C, one thread) as the load generator: far less CPU per request than Python."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT % (n_users - 1))
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            script.name,
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script.name)
    result: dict[str, Any] = {"load_generator": "wrk"}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("50%", "90%", "99%"):
            result[f"p{parts[0][:-1]}_ms"] = round(_unit_ms(parts[1]), 2)
        elif line.startswith("Requests/sec:"):
            result["requests_per_s"] = float(parts[1])
        elif "requests in" in line:
            result["requests"] = int(parts[0])
        elif line.strip().startswith("Non-2xx"):
            result["errors"] = int(parts[-1])
    result.setdefault("errors", 0)
    return result


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "musicrec.cli", "serve", "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
            wanted = env.get("MUSICREC_PRECOMPUTE_TOP_N") == "0" or health["precomputed_lists"]
            if health["status"] == "ok" and wanted:
                return process
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(1)
    process.kill()
    raise RuntimeError("the API did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    data = encode_interactions(load_interactions(generated_csv(args.scale), for_training=True))
    bundle = train_bundle(data, "als", PARAMS)
    model = bundle.model
    rng = np.random.default_rng(0)
    users = rng.integers(0, len(bundle.users), size=args.requests)

    # Baseline: one in-process recommend per request, one after another.
    latencies = []
    for user in users[: min(2000, args.requests)]:
        started = time.perf_counter()
        model.recommend(np.array([user]), 10, bundle.heard[[int(user)]])
        latencies.append(time.perf_counter() - started)
    in_process = {
        "calls": len(latencies),
        "calls_per_s": round(len(latencies) / sum(latencies), 1),
        **_percentiles(latencies),
    }
    with timed() as batch:
        all_users = np.arange(len(bundle.users))
        model.recommend(all_users, 10, bundle.heard)
    batch_users_per_s = round(len(all_users) / batch["seconds"], 1)

    results: dict[str, Any] = {
        "songs": len(bundle.songs),
        "users": len(bundle.users),
        "model": PARAMS,
        "concurrency": args.concurrency,
        "in_process_recommend": in_process,
        "batch_recommend_users_per_s": batch_users_per_s,
    }
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{tmp}/registry.db"
        store = open_store(database_url, Path(tmp) / "artifacts")
        record = store.registry.create("bench", "als", bundle.model.params())
        store.registry.publish(record.id, bundle)
        store.registry.set_active(record.id)
        store.close()
        for label, top_n in (("http_precomputed", "100"), ("http_live", "0")):
            port = _free_port()
            env = {
                "MUSICREC_DATABASE_URL": database_url,
                "MUSICREC_ARTIFACT_DIR": f"{tmp}/artifacts",
                "MUSICREC_BOOTSTRAP": "false",
                "MUSICREC_RUN_JOBS": "false",
                "MUSICREC_PRECOMPUTE_TOP_N": top_n,
                "MUSICREC_LOG_LEVEL": "WARNING",
            }
            with timed() as ready:
                server = _serve(env, port)
            try:
                asyncio.run(_load(port, users[:200], args.concurrency))  # warm-up
                if shutil.which("wrk"):
                    results[label] = _load_wrk(port, len(bundle.users), args.concurrency, 20)
                else:
                    results[label] = asyncio.run(_load(port, users, args.concurrency))
                    results[label]["load_generator"] = "httpx-asyncio"
                results[label]["seconds_to_ready"] = round(ready["seconds"], 1)
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(60)
    best = results["http_precomputed"]
    # > 1: the service answers more requests per second than one in-process call per request.
    results["ratio"] = round(best["requests_per_s"] / in_process["calls_per_s"], 2)
    results["live_ratio"] = round(
        results["http_live"]["requests_per_s"] / in_process["calls_per_s"], 2
    )
    results["goals"] = {
        "p99_ms_at_most": 20,
        "p99_met": best["p99_ms"] <= 20,
        "throughput_ratio_at_least": 5,
        "ratio_met": results["ratio"] >= 5,
    }
    write_section("serving", results)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
