"""Each UI page's logic with Streamlit's AppTest, against a real API process over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

from musicrec.ui import eda
from musicrec.ui.client import ApiClient, ApiError
from tests.api_helpers import free_port, start_server, stop_server
from tests.conftest import PROJECT_ROOT

PAGES = PROJECT_ROOT / "src" / "musicrec" / "ui" / "pages"
FINISHED = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def api_url(tmp_path_factory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("ui-api")
    env = {
        "MUSICREC_DATABASE_URL": f"sqlite:///{tmp / 'registry.db'}",
        "MUSICREC_ARTIFACT_DIR": str(tmp / "artifacts"),
        "MUSICREC_JOB_POLL_SECONDS": "0.1",
    }
    port = free_port()
    server = start_server(env, port)
    yield f"http://127.0.0.1:{port}"
    stop_server(server)


def _page(name: str, url: str, monkeypatch) -> AppTest:
    monkeypatch.setenv("MUSICREC_API_URL", url)
    at = AppTest.from_file(str(PAGES / name), default_timeout=60)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _until_finished(at: AppTest, key: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = at.session_state[key]
        if job["status"] in FINISHED:
            return job
        time.sleep(0.5)
        at.run()
        assert not at.exception, [e.message for e in at.exception]
    raise AssertionError(f"job {at.session_state[key]} did not finish")


@pytest.mark.parametrize("page", ["models.py", "recommendations.py", "federated.py"])
def test_api_down_gives_a_clear_message_not_a_traceback(page, monkeypatch):
    at = _page(page, f"http://127.0.0.1:{free_port()}", monkeypatch)
    assert at.error, "the page should say the API is unreachable"
    assert "cannot reach the API" in at.error[0].value
    assert "make run" in at.error[0].value


def test_client_names_the_api_error(api_url):
    client = ApiClient(api_url)
    with pytest.raises(ApiError, match=r"POST /set failed \(404\).*not found"):
        client.set_active("nope")


def test_eda_page_on_the_bundled_sample(monkeypatch, api_url):
    at = _page("eda.py", api_url, monkeypatch)
    assert [m.value for m in at.metric] == ["10,000", "1,622", "5,772"]
    subheaders = [s.value for s in at.subheader]
    for wanted in ("First 50 rows", "Missing values", "Target", "Text columns", "Top artists"):
        assert wanted in subheaders
    assert len(at.dataframe) >= 5


def test_eda_computations(sample_csv):
    from musicrec.data.loading import load_interactions, load_songs

    frame = load_interactions(sample_csv).to_pandas()
    target = eda.target_distribution(frame)
    assert target["share"].sum() == pytest.approx(1.0, abs=1e-3)
    assert target.loc[1, "share"] == pytest.approx(0.773, abs=1e-3)  # the data README's figure
    missing = eda.missing_values(frame)
    assert missing.loc["msno", "missing"] == 0 and missing.loc["source_screen_name", "missing"] > 0
    described = eda.describe_text_columns(frame)
    assert described.loc["unique", "msno"] == 1622
    grid = eda.pairwise_target_grid(frame, "source_type")
    values = min(eda.MAX_PAIR_VALUES, frame["source_type"].nunique())
    shown = [axis for axis in grid.axes if axis.get_visible() and axis.axison]
    assert len(shown) == values * (values - 1) // 2
    artists = eda.top_artists(frame, load_songs(PROJECT_ROOT / "data/sample/kkbox_songs.csv"))
    assert 0 < artists.attrs["coverage"] < 1  # songs.csv covers only part of the catalogue


def test_models_page_trains_shows_progress_and_activates(monkeypatch, api_url):
    at = _page("models.py", api_url, monkeypatch)
    at.text_input[0].input("apptest-als")
    at.slider[0].set_value(16)  # factors
    at.slider[1].set_value(4)  # iterations
    next(b for b in at.button if b.label == "Train model").click()
    at.run()
    job = _until_finished(at, "models-job")
    assert job["status"] == "succeeded", job.get("error")
    at.run()
    assert any("succeeded" in s.value for s in at.success)
    trained = job["model_id"]
    assert at.selectbox[-1].value == trained  # newest ready model preselected
    next(b for b in at.button if b.label == "Set active model").click()
    at.run()
    assert any(f"{trained} is now the active model" in s.value for s in at.success)
    assert ApiClient(api_url).health()["active_model"] == trained


def test_recommendations_page_recommends_and_logs_a_listen(monkeypatch, api_url):
    at = _page("recommendations.py", api_url, monkeypatch)
    next(b for b in at.button if b.label == "Recommend").click()
    at.run()
    result = at.session_state["recs"]
    assert len(result["recommendations"]) == 10 and result["cold_start"] is False
    before = next(d for d in ApiClient(api_url).datasets() if d["name"] == "kkbox-sample")
    next(b for b in at.button if b.label == "listen").click()
    at.run()
    assert not at.exception
    after = next(d for d in ApiClient(api_url).datasets() if d["name"] == "kkbox-sample")
    assert after["rows"] == before["rows"] + 1


@pytest.mark.slow
def test_federated_page_runs_and_plots_the_curves(monkeypatch, api_url):
    at = _page("federated.py", api_url, monkeypatch)
    at.number_input[0].set_value(3)  # clients
    at.slider[0].set_value(2)  # rounds
    next(b for b in at.button if b.label == "Start federated run").click()
    at.run()
    job = _until_finished(at, "federated-job", timeout=300)
    assert job["status"] == "succeeded", job.get("error")
    at.run()
    subheaders = [s.value for s in at.subheader]
    assert "Quality per round" in subheaders and "Bytes per client per round" in subheaders
    beside = at.dataframe[-1].value
    assert list(beside[""]) == ["federated", "parent"]
    assert beside["recall@10"].notna().all()
