"""The generator: exact scale, KKBox schema, determinism, a planted oracle that beats ALS."""

from __future__ import annotations

import numpy as np
import pytest

from musicrec.data.encoding import encode_interactions
from musicrec.data.loading import load_interactions
from musicrec.data.synthetic import (
    OracleRecommender,
    PlantedTaste,
    SyntheticSpec,
    generate,
    planted_path,
)
from musicrec.errors import InvalidParameterError
from musicrec.models.als import DEFAULT_ALS_PARAMS
from musicrec.training import ModelSpec, compare_models, oracle_spec


def test_exact_scale_schema_and_ids(tmp_path):
    spec = SyntheticSpec(rows=30_000, users=500, songs=5_000, seed=3)
    summary = generate(tmp_path / "g.csv", spec, rows_per_chunk=7_000)
    table = load_interactions(tmp_path / "g.csv")  # passes the real validator
    assert summary["rows"] == table.num_rows == 30_000
    msno = table.column("msno").combine_chunks()
    assert msno.unique().__len__() == 500
    assert {len(x) for x in msno.unique().to_pylist()} == {44}
    assert 0.3 < summary["target_share"] < 0.7
    pairs = table.select(["msno", "song_id"]).to_pandas()
    assert not pairs.duplicated().any()


def test_deterministic_and_parquet(tmp_path):
    spec = SyntheticSpec(rows=5_000, users=100, songs=2_000, seed=9)
    generate(tmp_path / "a.csv", spec)
    generate(tmp_path / "b.csv", spec)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    generate(tmp_path / "c.parquet", spec)
    assert load_interactions(tmp_path / "c.parquet").num_rows == 5_000


def test_large_chunks(tmp_path):
    # pyarrow turns numpy string arrays of this size into chunked arrays.
    spec = SyntheticSpec(rows=400_000, users=2_000, songs=50_000, seed=2)
    assert generate(tmp_path / "g.csv", spec)["rows"] == 400_000


def test_heavy_tail_activity_still_exact(tmp_path):
    spec = SyntheticSpec(rows=20_000, users=50, songs=1_000, activity_sigma=2.5, seed=1)
    assert generate(tmp_path / "g.csv", spec)["rows"] == 20_000


def test_invalid_spec():
    with pytest.raises(InvalidParameterError, match="half the catalogue"):
        SyntheticSpec(rows=1_000, users=2, songs=10).validate()


def test_oracle_is_the_ceiling(tmp_path):
    path = tmp_path / "g.csv"
    generate(path, SyntheticSpec(rows=60_000, users=1_500, songs=8_000, seed=5))
    data = encode_interactions(load_interactions(path))
    oracle = oracle_spec(path, data)
    assert oracle is not None
    report = compare_models(
        data,
        [
            ModelSpec("popularity", "popularity", {}),
            ModelSpec("als", "als", dict(DEFAULT_ALS_PARAMS)),
            oracle,
        ],
    )
    recall = {name: m["recall@10"] for name, m in report["models"].items()}
    assert recall["oracle"] > recall["als"] > recall["popularity"]


def test_oracle_pair_scores_match_rows(tmp_path):
    path = tmp_path / "g.csv"
    generate(path, SyntheticSpec(rows=5_000, users=100, songs=1_000, seed=4))
    data = encode_interactions(load_interactions(path))
    oracle = OracleRecommender(PlantedTaste.load(planted_path(path)), data.users, data.songs)
    users, songs = np.array([0, 5, 99]), np.array([3, 500, len(data.songs) - 1])
    expected = oracle.user_scores(users)[np.arange(3), songs]
    np.testing.assert_allclose(oracle.pair_scores(users, songs), expected)
