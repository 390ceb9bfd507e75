"""The API in-process (real FastAPI app, real store and worker processes, SQLite file)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from musicrec.api.app import create_app
from musicrec.models.artifacts import ARRAYS_FILE
from tests.api_helpers import api_settings, wait_for_job
from tests.conftest import HEADER, SAMPLE_CSV

FAST_FIT = {"model_name": "fast", "factors": 8, "iterations": 3, "evaluate": False}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    app = create_app(api_settings(tmp, log_file=tmp / "logs" / "api.log", max_upload_bytes=200_000))
    with TestClient(app) as test_client:
        test_client.tmp = tmp
        yield test_client


def test_bootstrap_serves_right_away(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["database"] is True
    models = client.get("/models").json()
    assert len(models) == 1 and models[0]["is_active"] and models[0]["status"] == "ready"
    assert models[0]["metrics"]["recall@10"] > 0.05
    assert [d["name"] for d in client.get("/datasets").json()] == ["kkbox-sample"]


def test_predict_known_user_filters_heard(client):
    history = set(client.get("/users/0/history", params={"limit": 1000}).json())
    for method in (client.post, client.get):
        body = method("/predict", params={"user_id": 0, "n": 20}).json()
        assert len(body["recommendations"]) == 20 and body["cold_start"] is False
        assert body["user_id"] == 0 and body["msno"]
        assert not history & set(body["recommendations"])
    keep = client.get("/predict", params={"user_id": 0, "n": 1000, "filter_heard": False}).json()
    assert history <= set(keep["recommendations"])
    by_msno = client.get("/predict", params={"msno": body["msno"], "n": 20}).json()
    assert by_msno["recommendations"] == body["recommendations"]


def test_unknown_user_gets_popular_list_not_someone_elses(client):
    popular = client.get("/predict", params={"user_id": 10**6, "n": 5}).json()
    assert popular["cold_start"] is True
    by_msno = client.get("/predict", params={"msno": "never-seen", "n": 5}).json()
    assert by_msno["cold_start"] is True
    assert popular["recommendations"] == by_msno["recommendations"]
    last_user = client.get("/users", params={"limit": 1, "offset": 1621}).json()["data"][0]
    last = client.get("/predict", params={"user_id": last_user["user_id"], "n": 5}).json()
    assert last["recommendations"] != popular["recommendations"]


def test_details_add_song_metadata(client):
    body = client.get("/predict", params={"user_id": 5, "n": 50, "details": True}).json()
    items = body["items"]
    assert len(items) == 50 and all("score" in i for i in items)
    assert any(i.get("artist_name") for i in items)  # the bundled songs.csv covers part of them


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n": 5}, "exactly one of user_id or msno"),
        ({"user_id": 1, "msno": "x"}, "exactly one of user_id or msno"),
        ({"user_id": 1, "n": 0}, "n: Input should be greater than or equal to 1"),
        ({"user_id": 1, "n": 1001}, "less than or equal to 1000"),
        ({"user_id": -1}, "user_id"),
        ({"user_id": "abc"}, "user_id"),
    ],
)
def test_predict_validation(client, params, message):
    response = client.get("/predict", params=params)
    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_recommend_for_new_history(client):
    songs = client.get("/users/3/history").json()
    body = client.post("/recommend", json={"songs": songs, "n": 10}).json()
    assert body["cold_start"] is False and len(body["recommendations"]) == 10
    assert not set(songs) & set(body["recommendations"])
    unknown = client.post("/recommend", json={"songs": ["nope"], "n": 3}).json()
    assert unknown["cold_start"] is True and unknown["unknown_songs"] == ["nope"]
    assert client.post("/recommend", json={"songs": [], "n": 3}).status_code == 422


def test_fit_set_predict(client):
    accepted = client.post("/fit", json=FAST_FIT)
    assert accepted.status_code == 202
    body = accepted.json()
    assert body["status"] == "training_started" and body["model_id"].startswith("als_")
    job = wait_for_job(client, body["job_id"])
    assert job["status"] == "succeeded", job["error"]
    model = client.get(f"/models/{body['model_id']}").json()
    assert model["status"] == "ready" and model["params"]["factors"] == 8
    assert client.post("/set", params={"model_id": body["model_id"]}).json() == {
        "status": "active_model_updated",
        "model_id": body["model_id"],
    }
    assert client.get("/predict", params={"user_id": 1}).json()["model_id"] == body["model_id"]
    assert client.get("/models").json()[0]["model_id"] == body["model_id"]  # newest first


def test_fit_validation_and_spec_alpha_warning(client):
    assert client.post("/fit", json={**FAST_FIT, "factors": 2000}).status_code == 422
    assert client.post("/fit", json={**FAST_FIT, "alpha": -1}).status_code == 422
    unknown = client.post("/fit", json={**FAST_FIT, "learning_rate": 1})
    assert unknown.status_code == 422 and "learning_rate" in unknown.json()["detail"]
    assert client.post("/fit", json={**FAST_FIT, "dataset": "missing"}).status_code == 404
    spec = client.post("/fit", json={**FAST_FIT, "alpha": 0.01, "regularization": 0.01})
    assert spec.status_code == 202 and "alpha=0.01" in spec.json()["warnings"][0]
    wait_for_job(client, spec.json()["job_id"])


def test_set_errors(client):
    assert client.post("/set", params={"model_id": "als_nope"}).status_code == 404
    active_before = client.get("/health").json()["active_model"]
    queued = client.app.state.musicrec.store.registry.create("not-yet", "als", {})
    conflict = client.post("/set", params={"model_id": queued.id})
    assert conflict.status_code == 409
    assert conflict.json()["detail"] == (
        f"model '{queued.id}' is queued; only a ready model can be loaded or active"
    )
    assert client.get("/health").json()["active_model"] == active_before != queued.id


def test_upload_dataset_raw_and_multipart(client):
    small = SAMPLE_CSV.read_text().splitlines()[:200]
    payload = ("\n".join(small) + "\n").encode()
    raw = client.post(
        "/datasets",
        params={"name": "raw-upload"},
        content=payload,
        headers={"content-type": "text/csv"},
    )
    assert raw.status_code == 201 and raw.json()["rows"] == 199
    multi = client.post(
        "/datasets",
        params={"name": "multi-upload"},
        files={"file": ("../../etc/passwd", payload, "text/csv")},
    )
    assert multi.status_code == 201
    assert not (client.tmp / "etc").exists()
    assert (
        client.post("/datasets", params={"name": "raw-upload"}, content=payload).status_code == 409
    )
    bad = client.post("/datasets", params={"name": "bad"}, content=b"a,b\n1,2\n")
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("uploaded file: missing required column")
    too_big = client.post("/datasets", params={"name": "big"}, content=b"x" * 300_000)
    assert too_big.status_code == 413
    assert "raw-upload" in [d["name"] for d in client.get("/datasets").json()]
    uploads = client.tmp / "uploads"
    assert not list(uploads.iterdir())  # temporary files cleaned up


def test_append_interactions(client):
    before = client.get("/datasets/kkbox-sample").json()["rows"]
    event = {"msno": "player-1", "song_id": "song-a", "source_system_tab": "discover", "target": 1}
    response = client.post("/interactions", json={"dataset": "kkbox-sample", "events": [event]})
    assert response.status_code == 201 and response.json()["rows"] == before + 1
    assert (
        client.post("/interactions", json={"dataset": "nope", "events": [event]}).status_code == 404
    )
    bad = client.post("/interactions", json={"events": [{**event, "target": 5}]})
    assert bad.status_code == 422


def test_users_metrics_request_id_and_logs(client):
    page = client.get("/users", params={"limit": 3, "offset": 10}).json()
    assert page["count"] == 1622 and [u["user_id"] for u in page["data"]] == [10, 11, 12]
    response = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    metrics = client.get("/metrics").text
    assert 'musicrec_request_seconds_bucket{le="0.005",method="GET",route="/predict"' in metrics
    active = client.get("/health").json()["active_model"]
    assert f'musicrec_active_model{{model_id="{active}"}} 1.0' in metrics
    assert 'musicrec_jobs{status="succeeded"}' in metrics
    lines = (client.tmp / "logs" / "api.log").read_text().splitlines()
    logged = [json.loads(line) for line in lines]
    assert any(
        entry.get("request_id") == "abc-123" and entry.get("status") == 200 for entry in logged
    )


def test_openapi_has_examples(client):
    schema = client.get("/openapi.json").json()
    fit = schema["components"]["schemas"]["FitRequest"]
    assert fit["examples"][0]["alpha"] == 0.01
    assert client.get("/docs").status_code == 200


def test_api_key_guards_mutations(tmp_path):
    app = create_app(api_settings(tmp_path, api_key="s3cret", run_jobs=False))
    with TestClient(app) as secured:
        assert secured.post("/fit", json=FAST_FIT).status_code == 401
        wrong = secured.post("/fit", json=FAST_FIT, headers={"X-API-Key": "nope"})
        assert (
            wrong.status_code == 401
            and wrong.json()["detail"] == "missing or wrong X-API-Key header"
        )
        assert (
            secured.post("/fit", json=FAST_FIT, headers={"X-API-Key": "s3cret"}).status_code == 202
        )
        assert secured.post("/set", params={"model_id": "x"}).status_code == 401
        assert secured.get("/models").status_code == 200
        assert secured.get("/predict", params={"user_id": 1}).status_code == 200


def test_broken_active_model_at_start(tmp_path):
    settings = api_settings(tmp_path)
    with TestClient(create_app(settings)) as first:
        active = first.get("/health").json()["active_model"]
    arrays = settings.artifact_dir / active / ARRAYS_FILE
    arrays.write_bytes(arrays.read_bytes()[:-5])
    with TestClient(create_app(settings)) as second:
        health = second.get("/health")
        assert health.status_code == 503 and health.json()["active_model"] is None
        response = second.get("/predict", params={"user_id": 1})
        assert response.status_code == 503 and "no active model" in response.json()["detail"]
        assert second.get(f"/models/{active}").json()["status"] == "broken"


def test_no_bootstrap_means_no_model(tmp_path):
    with TestClient(create_app(api_settings(tmp_path, bootstrap=False, run_jobs=False))) as bare:
        assert bare.get("/models").json() == []
        assert bare.get("/predict", params={"user_id": 0}).status_code == 503


def test_bad_rows_in_upload_name_the_line(client):
    content = (HEADER + "u,s,a,b,c,1\nu2,s2,a,b,c,maybe\n").encode()
    response = client.post("/datasets", params={"name": "typo"}, content=content)
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "uploaded file: column 'target' has 'maybe' at row 2 (line 3); target must be 0 or 1"
    )


def test_federate_warns_at_once_when_dp_noise_will_swamp_the_run(client):
    """20 of 100 silos per round at epsilon 8: the noise is ~15x the signal on the sample."""
    body = {"rounds": 2, "clients": 100, "clients_per_round": 20, "dp_epsilon": 8.0}
    accepted = client.post("/federate", json=body)
    assert accepted.status_code == 202, accepted.text
    warnings = accepted.json()["warnings"]
    assert len(warnings) == 1 and "noise will dominate" in warnings[0], warnings
    client.post(f"/jobs/{accepted.json()['job_id']}/cancel")
    assert wait_for_job(client, accepted.json()["job_id"])["status"] in ("cancelled", "succeeded")
    # Without DP nothing is said.
    plain = client.post("/federate", json={"rounds": 1, "clients": 3})
    assert plain.status_code == 202 and plain.json()["warnings"] == []
    client.post(f"/jobs/{plain.json()['job_id']}/cancel")
    assert wait_for_job(client, plain.json()["job_id"])["status"] in ("cancelled", "succeeded")
