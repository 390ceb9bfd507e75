"""The `musicrec` command as a user runs it."""

from __future__ import annotations

import json

import pytest

from tests.conftest import HEADER, SAMPLE_CSV, run_cli


def test_evaluate_json_on_sample_als_beats_popularity():
    result = run_cli("evaluate", "--data", str(SAMPLE_CSV), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dataset"] == {"rows": 10_000, "users": 1622, "songs": 5772}
    assert report["split"]["method"] == "per-user-holdout" and report["split"]["test_users"] > 1000
    keys = {"precision@10", "recall@10", "ndcg@10", "map@10", "hit_rate@10", "coverage", "auc"}
    for name in ("popularity", "als"):
        assert keys <= set(report["models"][name])
    als, pop = report["models"]["als"], report["models"]["popularity"]
    assert als["recall@10"] > pop["recall@10"]
    assert als["ndcg@10"] > pop["ndcg@10"]


def test_train_then_recommend_known_and_unknown(tmp_path):
    out = tmp_path / "model"
    result = run_cli("train", "--data", str(SAMPLE_CSV), "--out", str(out), "--factors", "16")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["params"]["factors"] == 16
    known = run_cli("recommend", "--model", str(out), "--user", "3", "-n", "5", "--json")
    assert known.returncode == 0, known.stderr
    payload = json.loads(known.stdout)
    assert payload["cold_start"] is False and len(payload["recommendations"]) == 5
    cold = run_cli("recommend", "--model", str(out), "--user", "not-a-listener", "--json")
    assert json.loads(cold.stdout)["cold_start"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "--data", "missing.csv"], "missing.csv: file not found"),
        (["train", "--data", str(SAMPLE_CSV), "--out", "{tmp}/m", "--factors", "0"], "factors"),
        (
            ["train", "--data", str(SAMPLE_CSV), "--out", "{tmp}/m", "--confidence", "x"],
            "confidence",
        ),
        (["recommend", "--model", "{tmp}", "--user", "1"], "meta.json is missing"),
        (["evaluate", "--data", "{bad}"], "'maybe' at row 1 (line 2)"),
        (["generate", "--out", "{tmp}/g.csv", "--rows", "10", "--users", "20"], "rows >= users"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_no_traceback(tmp_path, args, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "u,s,a,b,c,maybe\n")
    args = [a.format(tmp=tmp_path, bad=bad) for a in args]
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr.replace("\n", " ") or message in result.stderr
    assert "Traceback" not in result.stderr


def test_recommend_user_index_out_of_range(tmp_path):
    out = tmp_path / "model"
    assert (
        run_cli(
            "train", "--data", str(SAMPLE_CSV), "--out", str(out), "--model-type", "popularity"
        ).returncode
        == 0
    )
    result = run_cli("recommend", "--model", str(out), "--user", "99999")
    assert result.returncode == 2 and "out of range" in result.stderr


def test_generate_then_evaluate_reports_oracle(tmp_path):
    out = tmp_path / "g.csv"
    gen = run_cli(
        "generate", "--out", str(out), "--rows", "20000", "--users", "400", "--songs", "3000"
    )
    assert gen.returncode == 0, gen.stderr
    assert json.loads(gen.stdout)["rows"] == 20000
    result = run_cli("evaluate", "--data", str(out), "--json")
    models = json.loads(result.stdout)["models"]
    assert models["oracle"]["recall@10"] > models["popularity"]["recall@10"]
