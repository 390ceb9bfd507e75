"""The API as a real server: uvicorn in its own process, httpx over loopback, a restart."""

from __future__ import annotations

import httpx

from tests.api_helpers import free_port, start_server, stop_server, wait_for_job


def test_train_set_predict_restart(database_url, tmp_path):
    env = {
        "MUSICREC_DATABASE_URL": database_url,
        "MUSICREC_ARTIFACT_DIR": str(tmp_path / "artifacts"),
        "MUSICREC_JOB_POLL_SECONDS": "0.1",
    }
    port = free_port()
    server = start_server(env, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            fit = client.post("/fit", json={"model_name": "http", "factors": 16, "iterations": 5})
            assert fit.status_code == 202
            job = wait_for_job(client, fit.json()["job_id"])
            assert job["status"] == "succeeded", job["error"]
            model_id = fit.json()["model_id"]
            assert client.post("/set", params={"model_id": model_id}).status_code == 200
            known = client.post("/predict", params={"user_id": 7, "n": 10}).json()
            assert known["model_id"] == model_id and known["cold_start"] is False
            unknown = client.post("/predict", params={"user_id": 999_999, "n": 10}).json()
            assert unknown["cold_start"] is True and len(unknown["recommendations"]) == 10
            history = client.post("/recommend", json={"songs": known["recommendations"][:3]}).json()
            assert history["cold_start"] is False and len(history["recommendations"]) == 10
            federate = client.post("/federate", json={"rounds": 2, "clients": 3})
            assert federate.status_code == 202, federate.text
            assert federate.json()["parent_id"] == model_id
            job = wait_for_job(client, federate.json()["job_id"], timeout=300)
            assert job["status"] == "succeeded", job["error"]
            child = client.get(f"/models/{federate.json()['model_id']}").json()
            assert child["status"] == "ready" and child["parent_id"] == model_id
            assert [row["round"] for row in child["metrics"]["rounds"]] == [1, 2]
            bad = client.post("/federate", json={"rounds": 2, "partition": "silo:0"})
            assert bad.status_code == 422 and "silo:N" in bad.json()["detail"]
    finally:
        stop_server(server)

    restarted = start_server(env, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            again = client.post("/predict", params={"user_id": 7, "n": 10}).json()
            assert again["model_id"] == model_id
            assert again["recommendations"] == known["recommendations"]
            assert len(client.get("/models").json()) == 3  # bootstrap, ours, federated: all kept
    finally:
        stop_server(restarted)
