"""The serving hot path: precomputed top lists answer exactly what live scoring answers."""

from __future__ import annotations

import time

import pytest

from musicrec.data.encoding import encode_interactions
from musicrec.data.loading import load_interactions
from musicrec.serving import RecommendationService
from musicrec.training import train_bundle


@pytest.fixture(scope="module")
def bundle(request):
    from tests.conftest import SAMPLE_CSV

    data = encode_interactions(load_interactions(SAMPLE_CSV))
    return train_bundle(data, "als", {"factors": 16, "iterations": 5})


def _wait_ready(service: RecommendationService, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.current is not None and service.current.top.ready:
            return
        time.sleep(0.05)
    raise AssertionError("top lists never became ready")


def test_precomputed_lists_equal_live_scoring(bundle):
    live = RecommendationService(precompute_top_n=0)
    fast = RecommendationService(precompute_top_n=20)
    live.activate("m", bundle)
    fast.activate("m", bundle)
    _wait_ready(fast)
    assert live.current is not None and not live.current.top.ready
    for user in (0, 1, 7, 500, len(bundle.users) - 1):
        for n in (1, 10, 20):
            expected = live.for_user(n, user_index=user)
            got = fast.for_user(n, user_index=user)
            assert got.song_ids == expected.song_ids
            assert got.scores == pytest.approx(expected.scores, rel=1e-5)
            heard = set(bundle.songs.ids[bundle.heard[user].indices])
            assert not heard & set(got.song_ids)
    # Past the precomputed length, or with heard songs kept, the live path answers.
    assert fast.for_user(30, user_index=3).song_ids == live.for_user(30, user_index=3).song_ids
    kept = fast.for_user(10, user_index=3, filter_heard=False)
    assert kept.song_ids == live.for_user(10, user_index=3, filter_heard=False).song_ids


def test_a_swap_abandons_the_old_models_lists(bundle):
    service = RecommendationService(precompute_top_n=20)
    service.activate("old", bundle)
    old = service.current
    service.activate("new", bundle)
    _wait_ready(service)
    assert service.current is not None and service.current.model_id == "new"
    assert old is not None and old is not service.current
