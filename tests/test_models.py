"""One contract test for every model (checkerboard), fold-in, and artifact round-trip/corruption."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from implicit.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from musicrec.data.encoding import IdMap
from musicrec.errors import ArtifactError, InvalidParameterError
from musicrec.models import ALSRecommender, PopularityRecommender, create_model
from musicrec.models.als import confidence_values
from musicrec.models.artifacts import ARRAYS_FILE, META_FILE, ModelBundle, load_bundle, save_bundle


@pytest.fixture(params=["als", "popularity"])
def fitted(request, checkerboard):
    params = (
        {"factors": 8, "iterations": 10, "alpha": 5.0, "seed": 1} if request.param == "als" else {}
    )
    model = create_model(request.param, **params)
    model.fit(checkerboard)
    return model


def test_contract_recommend_filters_heard_and_batch_equals_single(fitted, checkerboard):
    users = np.arange(50)
    ids, scores = fitted.recommend(users, 5, checkerboard)
    assert ids.shape == (50, 5)
    for user in users:
        heard = set(checkerboard[user].indices)
        assert not heard & set(ids[user][ids[user] >= 0].tolist())
        _, single_scores = fitted.recommend(np.array([user]), 5, checkerboard[[user]])
        np.testing.assert_allclose(single_scores[0], scores[user], rtol=1e-4, atol=1e-6)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_als_learns_the_checkerboard(checkerboard, seed):
    # The checkerboard has rank 2: two factors can represent it exactly.
    model = ALSRecommender(factors=2, iterations=15, alpha=5.0, seed=seed)
    model.fit(checkerboard)
    ids, _ = model.recommend(np.arange(50), 1, checkerboard)
    # The one song each user did not hear shares their parity: ALS must find it.
    assert np.all(ids[:, 0] % 2 == np.arange(50) % 2)


def test_pair_scores_match_user_scores(fitted):
    users = np.array([0, 3, 7])
    songs = np.array([5, 1, 9])
    expected = fitted.user_scores(users)[np.arange(3), songs]
    np.testing.assert_allclose(fitted.pair_scores(users, songs), expected, rtol=1e-4, atol=1e-6)
    assert fitted.pair_scores(np.array([-1]), np.array([2]))[0] == pytest.approx(
        0.0 if isinstance(fitted, ALSRecommender) else fitted.song_counts[2]
    )


def test_fold_in_equals_implicit_recalculate_user(checkerboard):
    model = ALSRecommender(factors=8, iterations=10, alpha=5.0, regularization=0.1, seed=3)
    model.fit(checkerboard)
    history = np.array([0, 2, 4, 6, 8])
    ours = model.fold_in(history, np.ones(5, dtype=np.float32))

    reference = AlternatingLeastSquares(factors=8, regularization=0.1, alpha=1.0, random_state=0)
    reference.item_factors = model.item_factors
    reference.user_factors = model.user_factors
    row = sp.csr_matrix(
        (confidence_values(np.ones(5), 5.0), (np.zeros(5, dtype=int), history)), shape=(1, 50)
    )
    with threadpool_limits(1, "blas"):
        expected = np.asarray(reference.recalculate_user(0, row)).ravel()
    np.testing.assert_allclose(ours, expected, rtol=2e-3, atol=2e-4)
    ids, _ = model.recommend_for_history(history, 5)
    assert set(ids.tolist()).isdisjoint(history) and np.all(ids % 2 == 0)


def test_popularity_ranks_by_listeners(checkerboard):
    model = PopularityRecommender()
    matrix = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1]], dtype=np.float32))
    model.fit(matrix)
    ids, _ = model.recommend(np.array([1]), 3, matrix[[1]])
    assert ids[0].tolist() == [1, 2, -1]  # song 0 heard; pads with -1 when the catalogue runs out


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"factors": 0}, "factors must be between 1 and 1024"),
        ({"iterations": 5000}, "iterations must be between"),
        ({"alpha": -1}, "alpha must be between 0"),
        ({"regularization": float("nan")}, "regularization must be a number"),
        ({"learning_rate": 1}, "unknown ALS parameter"),
    ],
)
def test_invalid_params_are_named(params, message):
    with pytest.raises(InvalidParameterError, match=message):
        ALSRecommender(**params)


def test_unknown_model_type():
    with pytest.raises(InvalidParameterError, match="unknown model type 'bpr'"):
        create_model("bpr")


def test_small_alpha_warns():
    assert ALSRecommender(alpha=0.01).warnings()
    assert not ALSRecommender().warnings()


def make_bundle(model, n_users=50, n_songs=50, heard=None) -> ModelBundle:
    users = IdMap(np.array([f"user{i}" for i in range(n_users)]))
    songs = IdMap(np.array([f"song{i}" for i in range(n_songs)]))
    return ModelBundle(
        model=model, users=users, songs=songs, heard=heard, meta={"metrics": {"x": 1}}
    )


@pytest.mark.parametrize("model_type", ["als", "popularity"])
def test_artifact_round_trip(tmp_path, checkerboard, model_type):
    model = create_model(model_type)
    model.fit(checkerboard)
    bundle = make_bundle(model, heard=checkerboard)
    save_bundle(bundle, tmp_path / "m")
    loaded = load_bundle(tmp_path / "m")
    assert type(loaded.model) is type(model)
    assert loaded.model.params() == model.params()
    for name, value in model.arrays().items():
        np.testing.assert_array_equal(loaded.model.arrays()[name], value)
    assert loaded.users.lookup(["user7", "nobody"]).tolist() == [7, -1]
    assert (loaded.heard != checkerboard).nnz == 0
    meta = json.loads((tmp_path / "m" / META_FILE).read_text())
    assert meta["library_versions"]["implicit"] and meta["metrics"] == {"x": 1}
    assert b"pickle" not in (tmp_path / "m" / ARRAYS_FILE).read_bytes()[:0]  # npz, no object arrays
    with np.load(tmp_path / "m" / ARRAYS_FILE, allow_pickle=False) as npz:
        assert all(npz[name].dtype != object for name in npz.files)


@pytest.fixture
def saved(tmp_path, checkerboard):
    model = ALSRecommender(factors=4, iterations=2)
    model.fit(checkerboard)
    return save_bundle(make_bundle(model, heard=checkerboard), tmp_path / "m")


def test_flipped_byte_fails_checksum(saved):
    path = saved / ARRAYS_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        load_bundle(saved)


def test_truncated_arrays_fail(saved):
    path = saved / ARRAYS_FILE
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        load_bundle(saved)


def test_shape_mismatch_fails_even_with_matching_checksum(saved):
    meta_path = saved / META_FILE
    meta = json.loads(meta_path.read_text())
    meta["shapes"]["model.item_factors"] = [49, 4]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="has shape"):
        load_bundle(saved)


def test_expected_checksum_from_registry_is_checked(saved):
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        load_bundle(saved, expected_sha256="0" * 64)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / META_FILE).unlink(), "meta.json is missing"),
        (lambda d: (d / META_FILE).write_text("{not json"), "corrupt metadata"),
        (lambda d: (d / ARRAYS_FILE).unlink(), "arrays.npz is missing"),
        (lambda d: (d / META_FILE).write_text('{"format": "other"}'), "not a musicrec model"),
    ],
)
def test_damaged_artifacts(saved, damage, message):
    damage(saved)
    with pytest.raises(ArtifactError, match=message):
        load_bundle(saved)


def test_save_refuses_to_overwrite_and_leaves_no_temp(saved, checkerboard):
    model = PopularityRecommender()
    model.fit(checkerboard)
    with pytest.raises(ArtifactError, match="already exists"):
        save_bundle(make_bundle(model, heard=checkerboard), saved)
    assert [p.name for p in saved.parent.iterdir()] == ["m"]
