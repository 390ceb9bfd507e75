"""Federated ALS: the math, the privacy pieces, and real runs on Flower's simulation engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from musicrec.errors import InvalidParameterError
from musicrec.federated import secagg
from musicrec.federated.config import FederatedConfig
from musicrec.federated.data import client_users, parse_partition
from musicrec.federated.privacy import epsilon_spent, noise_for_epsilon
from musicrec.federated.task import ClientReply, aggregate, client_update, round_song_set
from musicrec.models.als import fold_in_users
from tests.conftest import run_cli

FULL_KKBOX_SONGS = 359_966


# -- the math -------------------------------------------------------------------------------


def _objective(v: np.ndarray, user_items: sp.csr_matrix, alpha: float, reg: float) -> float:
    """min over user vectors of the regularized implicit-ALS loss, as a function of V."""
    gram = v.T @ v
    x = fold_in_users(v, gram, user_items, alpha, reg).astype(np.float64)
    dense = user_items.toarray()
    preference = (dense > 0).astype(np.float64)
    confidence = 1.0 + alpha * dense
    residual = preference - x @ v.T
    return float((confidence * residual**2).sum() + reg * (x**2).sum())


def test_client_update_is_the_gradient_of_the_loss():
    # Envelope theorem: at the optimal user vectors the derivative of the minimized loss
    # w.r.t. V is the partial derivative, which is what a client sends.
    rng = np.random.default_rng(0)
    v = rng.normal(0, 0.3, size=(12, 3))
    user_items = sp.random(4, 12, density=0.3, random_state=1, format="csr") * 3
    user_items.data = np.ceil(user_items.data)
    songs = np.array([0, 2, 5, 7, 11])
    update = client_update(v.astype(np.float32), user_items, songs, 2.0, 0.1).astype(np.float64)
    step = 1e-3
    for row_pos, song in enumerate(songs):
        for col in range(3):
            plus, minus = v.copy(), v.copy()
            plus[song, col] += step
            minus[song, col] -= step
            numeric = (
                _objective(plus, user_items, 2.0, 0.1) - _objective(minus, user_items, 2.0, 0.1)
            ) / (2 * step)
            assert update[row_pos, col] == pytest.approx(numeric, rel=2e-2, abs=2e-3)


def test_upload_stays_under_one_megabyte_at_full_kkbox_scale():
    covered: set[int] = set()
    for round_index in range(-(-FULL_KKBOX_SONGS // ((1_000_000 - 1024) // 128))):
        songs = round_song_set(FULL_KKBOX_SONGS, 32, 1_000_000, round_index, seed=3)
        assert songs.shape[0] * 32 * 4 <= 1_000_000
        covered.update(songs.tolist())
    assert len(covered) == FULL_KKBOX_SONGS  # the rotation reaches every song
    masked = round_song_set(FULL_KKBOX_SONGS, 32, 1_000_000, 0, 3, value_bytes=8)
    assert masked.shape[0] * 32 * 8 + secagg.KEY_BYTES <= 1_000_000


def test_partitions_cover_every_listener_once():
    parts = [client_users(i, 7, 100, seed=1) for i in range(7)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(100))
    assert parse_partition("silo:7", 100) == 7 and parse_partition("user", 100) == 100
    with pytest.raises(InvalidParameterError, match="silo:N"):
        parse_partition("silo:0", 100)
    with pytest.raises(InvalidParameterError, match="invalid partition"):
        parse_partition("by-country", 100)


def test_mean_aggregation_sums_then_divides_by_listeners():
    a = ClientReply(np.full((2, 2), 4.0, dtype=np.float32), weight=2)
    b = ClientReply(np.full((2, 2), 2.0, dtype=np.float32), weight=1)
    result = aggregate([a, b], (2, 2), "mean")
    assert np.allclose(result.gradient, 2.0) and result.used == 2


def test_aggregation_drops_non_finite_and_wrong_shaped_updates():
    good = ClientReply(np.ones((2, 2), dtype=np.float32), 1)
    nan = ClientReply(np.full((2, 2), np.nan, dtype=np.float32), 1)
    wrong = ClientReply(np.ones((3, 2), dtype=np.float32), 1)
    result = aggregate([good, nan, wrong], (2, 2), "mean")
    assert result.used == 1 and result.rejected == 2 and np.allclose(result.gradient, 1.0)


@pytest.mark.parametrize("method", ["clip", "trimmed-mean", "median"])
def test_robust_rules_resist_one_huge_opposite_update(method):
    rng = np.random.default_rng(0)
    honest = [
        ClientReply((1.0 + 0.1 * rng.normal(size=(4, 3))).astype(np.float32), 1) for _ in range(9)
    ]
    attacker = ClientReply(np.full((4, 3), -1e6, dtype=np.float32), 1)
    robust = aggregate([*honest, attacker], (4, 3), method).gradient
    plain = aggregate([*honest, attacker], (4, 3), "mean").gradient
    assert np.all(robust > 0.5) and np.all(robust < 1.5)
    assert np.all(plain < -1e4)  # the attack is real without a robust rule


def test_secure_aggregation_masks_cancel_only_in_the_sum():
    rng = np.random.default_rng(0)
    updates = [rng.normal(size=(50, 4)).astype(np.float32) for _ in range(5)]
    keys = [secagg.new_private_key() for _ in updates]
    public = np.stack([np.frombuffer(secagg.public_key(k), dtype=np.uint8) for k in keys])
    masked = [
        secagg.mask_update(u, k, i, public, 7)
        for i, (u, k) in enumerate(zip(updates, keys, strict=True))
    ]
    assert np.allclose(secagg.unmask_sum(masked), np.sum(updates, axis=0), atol=1e-5)
    # One masked update alone is uniform noise: no correlation with the client's update.
    alone = secagg.from_fixed_point(masked[0]).ravel()
    assert abs(np.corrcoef(alone, updates[0].ravel())[0, 1]) < 0.3
    # A missing participant leaves the masks in: the sum is garbage, which is why such a
    # round is discarded.
    assert not np.allclose(secagg.unmask_sum(masked[:4]), np.sum(updates[:4], axis=0), atol=1.0)


def test_dp_noise_for_a_target_epsilon():
    noise = noise_for_epsilon(4.0, 20, 100, 1000, 1e-5)
    assert epsilon_spent(noise, 20, 100, 1000, 1e-5) == pytest.approx(4.0, rel=0.01)
    # More noise, less epsilon; sampling fewer clients per round also spends less.
    assert epsilon_spent(noise * 2, 20, 100, 1000, 1e-5) < 4.0
    assert epsilon_spent(noise, 20, 10, 1000, 1e-5) < 4.0


def test_dp_noise_warning_says_when_noise_swamps_the_updates():
    from musicrec.federated.privacy import dp_noise_to_signal, dp_noise_warning

    # sigma * sqrt(d) / K: the noise on the mean over a clipped update's typical coordinate
    assert dp_noise_to_signal(1.0, 100, 10_000) == pytest.approx(1.0)
    assert dp_noise_to_signal(1.36, 20, 184_704) == pytest.approx(29.2, rel=0.01)
    assert dp_noise_warning(1.0, 1000, 10_000, 8.0) is None
    warning = dp_noise_warning(1.36, 20, 184_704, 8.0)
    assert warning is not None and "29x" in warning and "20 clients per round" in warning


def test_config_rejects_incompatible_options():
    with pytest.raises(InvalidParameterError, match="aggregation 'mean' with --secagg"):
        FederatedConfig(data_path="x", secagg=True, aggregation="median").validate()
    with pytest.raises(InvalidParameterError, match="unknown aggregation"):
        FederatedConfig(data_path="x", aggregation="krum2").validate()
    with pytest.raises(InvalidParameterError, match="dp epsilon"):
        FederatedConfig(data_path="x", dp_epsilon=-1).validate()


# -- real runs on Flower's simulation engine ---------------------------------------------------


def _run(sample_csv, partition="silo:10", compare=False, **options):
    from musicrec.federated.simulation import run_federated

    config = FederatedConfig(data_path=str(sample_csv), **options)
    return run_federated(config, partition, compare=compare)


@pytest.mark.slow
def test_federated_matches_centralized_quality_on_the_sample(sample_csv):
    report, bundle = _run(sample_csv, rounds=20, compare=True)
    models = report["models"]
    federated, central = models["federated"]["recall@10"], models["als"]["recall@10"]
    assert federated >= 0.9 * central, (federated, central)
    assert federated > models["popularity"]["recall@10"]
    assert report["seed_style"]["recall@10"] == pytest.approx(central, abs=0.002)
    assert [row["round"] for row in report["rounds"]] == list(range(1, 21))
    for row in report["rounds"]:
        assert {
            "recall@10",
            "ndcg@10",
            "bytes_up_per_client",
            "bytes_down_per_client",
            "seconds",
        } <= set(row)
        assert row["bytes_up_per_client"] <= 1_000_000
    assert report["privacy"] == {
        **report["privacy"],
        "epsilon": None,
        "secagg": False,
        "aggregation": "mean",
    }
    # The privacy audit: the server only ever received the update block and a listener count.
    n_songs = len(bundle.songs)
    assert report["received_by_server"]["arrays"] == [f"update[{n_songs}, 32]"]
    assert report["received_by_server"]["metrics"] == ["num_users"]
    assert report["received_by_server"]["replies"] == 20 * 10


@pytest.mark.slow
def test_one_poisoned_client_barely_moves_recall_with_robust_aggregation(sample_csv):
    options = {"rounds": 20, "aggregation": "clip"}
    clean, _ = _run(sample_csv, "silo:50", **options)
    attacked, _ = _run(
        sample_csv, "silo:50", poisoned_clients=[3], poison_mode="adversarial", **options
    )
    exploded, _ = _run(sample_csv, "silo:50", poisoned_clients=[3], poison_mode="huge", **options)
    base = clean["models"]["federated"]["recall@10"]
    for report in (attacked, exploded):
        moved = abs(report["models"]["federated"]["recall@10"] - base) / base
        assert moved < 0.05, (report["models"]["federated"]["recall@10"], base)
    # Without the robust rule the same client wrecks the model.
    naive, _ = _run(
        sample_csv, "silo:50", rounds=5, poisoned_clients=[3], poison_mode="adversarial"
    )
    assert naive["models"]["federated"]["recall@10"] < 0.5 * base


@pytest.mark.slow
def test_secure_aggregation_gives_the_plain_result_and_hides_updates(sample_csv):
    options = {"rounds": 3, "max_upload_bytes": 10_000_000}
    plain, plain_bundle = _run(sample_csv, "silo:5", **options)
    secure, secure_bundle = _run(sample_csv, "silo:5", secagg=True, **options)
    assert np.allclose(secure_bundle.model.item_factors, plain_bundle.model.item_factors, atol=1e-4)
    n_songs = len(plain_bundle.songs)
    assert secure["received_by_server"]["arrays"] == [
        f"masked_update[{n_songs}, 32]",
        "public_key[32]",
    ]
    assert secure["privacy"]["secagg"] is True
    assert (
        secure["rounds"][0]["bytes_up_per_client"] > 1.9 * plain["rounds"][0]["bytes_up_per_client"]
    )


@pytest.mark.slow
def test_differential_privacy_reports_epsilon(sample_csv):
    report, _ = _run(sample_csv, "silo:20", rounds=4, clients_per_round=10, dp_epsilon=5.0)
    privacy = report["privacy"]
    assert privacy["epsilon"] == pytest.approx(5.0, rel=0.01)
    assert 0 < privacy["delta"] <= 1e-5 and privacy["noise_multiplier"] > 0
    assert privacy["aggregation"] == "dp-clipped-mean" and privacy["clients_per_round"] == 10


@pytest.mark.slow
def test_federate_cli_registers_a_model_with_its_curve(sample_csv, tmp_path):
    env = {
        "MUSICREC_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}",
        "MUSICREC_ARTIFACT_DIR": str(tmp_path / "artifacts"),
    }
    result = run_cli(
        "federate", "--data", str(sample_csv), "--clients", "4", "--rounds", "2", "--json", env=env
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report["models"]) == {"popularity", "als", "federated"}
    assert set(report["models"]["als"]) >= {"recall@10", "ndcg@10", "auc"}
    # The federated song factors trained on the AUC split's test rows: no leaked AUC is shown.
    assert report["models"]["federated"]["auc"] is None
    assert any("auc is not measured" in note for note in report["notes"])
    assert set(report["privacy"]) >= {"epsilon", "delta", "secagg", "aggregation"}
    from musicrec.store import open_store

    store = open_store(env["MUSICREC_DATABASE_URL"], tmp_path / "artifacts")
    record = store.registry.get(report["model_id"])
    assert record.status == "ready" and record.metrics is not None
    assert [row["round"] for row in record.metrics["rounds"]] == [1, 2]
    loaded = store.registry.load(record.id)
    assert loaded.model.item_factors.shape == (len(loaded.songs), 32)

    bad = run_cli("federate", "--data", str(sample_csv), "--partition", "silo:0", env=env)
    assert bad.returncode == 2 and "silo:N" in bad.stderr and "Traceback" not in bad.stderr
    both = run_cli(
        "federate", "--data", str(sample_csv), "--clients", "3", "--partition", "user", env=env
    )
    assert both.returncode == 2 and "not both" in both.stderr
