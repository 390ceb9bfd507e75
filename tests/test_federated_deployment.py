"""Federated fine-tuning across processes: a real SuperLink, three SuperNodes, `flwr run`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from musicrec.data.encoding import encode_interactions
from musicrec.store import open_store
from musicrec.training import train_bundle
from tests.api_helpers import free_port
from tests.conftest import PROJECT_ROOT, run_cli

FLOWER_APP = PROJECT_ROOT / "docker" / "flower-app"
BIN = Path(sys.executable).parent


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log, "wb") as handle:
        # Own process group: the SuperExec children the Flower processes start go with them.
        return subprocess.Popen(
            args, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"process exited with {process.returncode}"
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise AssertionError(f"nothing listens on {port}")


@pytest.mark.slow
def test_superlink_and_three_supernodes_publish_a_fine_tuned_model(sample_csv, tmp_path):
    database_url = f"sqlite:///{tmp_path / 'registry.db'}"
    artifacts = tmp_path / "artifacts"
    store = open_store(database_url, artifacts)
    store.datasets.import_file("sample", sample_csv)
    data = encode_interactions(store.datasets.read_table("sample"))
    base = store.registry.create("base", "als", {"factors": 16, "iterations": 5})
    store.registry.publish(base.id, train_bundle(data, "als", {"factors": 16, "iterations": 5}))
    store.registry.set_active(base.id)

    flwr_home = tmp_path / "flwr"
    flwr_home.mkdir()
    link_port = free_port()
    (flwr_home / "config.toml").write_text(
        '[superlink]\ndefault = "musicrec"\n\n'
        f'[superlink.musicrec]\naddress = "127.0.0.1:{link_port}"\ninsecure = true\n'
    )
    env = {**os.environ, "FLWR_HOME": str(flwr_home), "PATH": f"{BIN}:{os.environ['PATH']}"}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        superlink = _start(
            [str(BIN / "flower-superlink"), "--insecure", "--port", str(link_port)],
            tmp_path / "superlink.log",
            env,
        )
        processes.append(superlink)
        _wait_listening(link_port, superlink)
        # What a device holds: the base model's song catalogue, exported by the CLI.
        catalogue = tmp_path / "catalogue.npz"
        exported = run_cli(
            "export-catalogue",
            "--out",
            str(catalogue),
            env={"MUSICREC_DATABASE_URL": database_url, "MUSICREC_ARTIFACT_DIR": str(artifacts)},
        )
        assert exported.returncode == 0, exported.stderr
        for partition in range(3):
            node_config = (
                f"data-path='{sample_csv}' catalogue-path='{catalogue}' "
                f"partition-id={partition} num-partitions=3"
            )
            processes.append(
                _start(
                    [
                        str(BIN / "flower-supernode"),
                        "--insecure",
                        "--superlink",
                        f"127.0.0.1:{link_port}",
                        "--port",
                        str(free_port()),
                        "--node-config",
                        node_config,
                    ],
                    tmp_path / f"supernode-{partition}.log",
                    env,
                )
            )
        run_config = (
            f"database-url='{database_url}' artifact-dir='{artifacts}' rounds=2 min-clients=3 "
            "model-name='deployed'"
        )
        started = subprocess.run(
            [str(BIN / "flwr"), "run", str(FLOWER_APP), "musicrec", "--run-config", run_config],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert started.returncode == 0, started.stdout + started.stderr
        assert "Successfully started run" in started.stdout

        deadline = time.monotonic() + 240
        child = None
        while time.monotonic() < deadline:
            children = [m for m in store.registry.list_models() if m.parent_id == base.id]
            if children and children[0].status in ("ready", "failed"):
                child = children[0]
                break
            time.sleep(1)
        assert child is not None, (tmp_path / "superlink.log").read_text()[-3000:]
        assert child.status == "ready", child.error
        assert child.name == "deployed"
        assert child.metrics is not None
        rounds = child.metrics["rounds"]
        assert [row["round"] for row in rounds] == [1, 2]
        assert all(row["clients_used"] == 3 for row in rounds)
        assert all(0 < row["bytes_up_per_client"] <= 1_000_000 for row in rounds)

        tuned = store.registry.load(child.id)
        before = store.registry.load(base.id)
        assert tuned.model.item_factors.shape == before.model.item_factors.shape
        # The song factors moved: the clients' updates reached the model.
        assert not np.allclose(tuned.model.item_factors, before.model.item_factors)
        assert store.registry.active_id() == base.id  # fine-tuning never swaps the active model
    finally:
        for process in reversed(processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        store.close()
