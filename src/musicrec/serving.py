"""The recommendation hot path: the active model in memory, swapped atomically.

A request takes one reference to the current ``ServedModel`` and uses only that, so a model
swap in the middle of a request never mixes two models. Listeners the model cannot score go
down a fallback chain: personal (known user, or fold-in of a given history) → popular.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicrec.data.loading import load_songs
from musicrec.errors import InvalidParameterError, UnavailableError
from musicrec.models.artifacts import ModelBundle

MAX_N = 1000
logger = logging.getLogger("musicrec.serving")


# Listeners per block of the background precomputation; between blocks it checks whether
# its model is still the active one.
_PRECOMPUTE_BLOCK = 512


class TopLists:
    """Every known listener's top songs (heard ones left out), computed once per model.

    Filled by a background thread after activation; until it is complete (``ids`` is None)
    requests are scored live, so the lists only ever speed answers up, never change them.
    """

    def __init__(self) -> None:
        self.ids: np.ndarray | None = None  # int32, users x cap, -1 padded
        self.scores: np.ndarray | None = None
        self.seconds: float | None = None

    @property
    def ready(self) -> bool:
        return self.ids is not None

    def answers(self, n: int, filter_heard: bool) -> bool:
        """True when the lists hold the answer for n songs (heard songs left out)."""
        return filter_heard and self.ids is not None and n <= self.ids.shape[1]


@dataclass(frozen=True)
class ServedModel:
    model_id: str
    bundle: ModelBundle
    popular_order: np.ndarray  # song indices, most listeners first
    top: TopLists = field(default_factory=TopLists)

    @classmethod
    def build(cls, model_id: str, bundle: ModelBundle) -> ServedModel:
        order = np.argsort(-bundle.popular_songs(), kind="stable")
        return cls(model_id=model_id, bundle=bundle, popular_order=order)


@dataclass
class Recommendations:
    model_id: str
    song_ids: list[str]
    scores: list[float]
    cold_start: bool
    user_index: int | None = None
    msno: str | None = None
    unknown_songs: list[str] = field(default_factory=list)


class RecommendationService:
    """Answers recommendation requests from whichever model is active right now."""

    def __init__(
        self, songs_csv: Path | None = None, precompute_top_n: int = 0, precompute_threads: int = 1
    ) -> None:
        self.current: ServedModel | None = None
        self.precompute_top_n = precompute_top_n
        self.precompute_threads = precompute_threads
        self._precompute_thread: threading.Thread | None = None
        self.song_metadata: dict[str, dict[str, Any]] = {}
        if songs_csv is not None and Path(songs_csv).is_file():
            frame = load_songs(songs_csv)
            frame = frame.astype(object).where(pd.notna(frame), None)
            self.song_metadata = {
                str(row["song_id"]): {str(k): v for k, v in row.items()}
                for row in frame.to_dict("records")
            }

    def activate(self, model_id: str, bundle: ModelBundle) -> None:
        """Serve ``bundle`` from now on (one reference assignment: atomic for readers)."""
        served = ServedModel.build(model_id, bundle)
        # Build the id lookups now, not on the first request, then exempt everything alive
        # from the cyclic GC: a full collection walking the model's ~400k id strings was
        # the tail of /predict's latency. Unfreezing first lets a replaced model be freed.
        bundle.users.build_index()
        bundle.songs.build_index()
        self.current = served
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        if self.precompute_top_n > 0 and len(bundle.users) > 0:
            self._precompute_thread = threading.Thread(
                target=self._precompute, args=(served,), name="musicrec-toplists", daemon=True
            )
            self._precompute_thread.start()

    def _precompute(self, served: ServedModel) -> None:
        """Fill ``served.top`` block by block; stops early once another model is active."""
        bundle = served.bundle
        n_users = len(bundle.users)
        cap = min(self.precompute_top_n, len(bundle.songs))
        ids = np.empty((n_users, cap), dtype=np.int32)
        scores = np.empty((n_users, cap), dtype=np.float32)
        started = time.perf_counter()
        try:
            for start in range(0, n_users, _PRECOMPUTE_BLOCK):
                if self.current is not served:
                    return
                users = np.arange(start, min(n_users, start + _PRECOMPUTE_BLOCK))
                block_ids, block_scores = bundle.model.recommend(
                    users, cap, bundle.heard[users], threads=self.precompute_threads
                )
                ids[users], scores[users] = block_ids, block_scores
        except Exception:  # the live path still answers; the lists are only a speed-up
            logger.exception("precomputing top lists of %s failed", served.model_id)
            return
        served.top.scores = scores
        served.top.seconds = round(time.perf_counter() - started, 2)
        served.top.ids = ids  # last: readers check ids
        logger.info(
            "top-%d lists of %s ready for %d listeners in %.1f s",
            cap,
            served.model_id,
            n_users,
            served.top.seconds,
        )

    def deactivate(self, timeout: float = 30.0) -> None:
        """Serve nothing; a precomputation in progress stops after its current block."""
        self.current = None
        thread = self._precompute_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def served(self) -> ServedModel:
        served = self.current
        if served is None:
            raise UnavailableError(
                "no active model: train one with POST /fit and activate it with POST /set"
            )
        return served

    def answers_from_lists(self, n: int, filter_heard: bool) -> bool:
        """True when a request for n songs is a lookup (precomputed lists ready, or cold)."""
        served = self.current
        return served is None or served.top.answers(n, filter_heard)

    def _popular(
        self, served: ServedModel, n: int, exclude: np.ndarray | None
    ) -> tuple[list[str], list[float]]:
        order = served.popular_order
        if exclude is not None and exclude.size:
            order = order[~np.isin(order, exclude)]
        top = order[:n]
        counts = served.bundle.popular_songs()
        return served.bundle.songs.ids[top].tolist(), counts[top].astype(float).tolist()

    def for_user(
        self,
        n: int,
        user_index: int | None = None,
        msno: str | None = None,
        filter_heard: bool = True,
    ) -> Recommendations:
        """Top-n for a listener named by index or msno; unknown listeners get popular songs."""
        _check_n(n)
        served = self.served()
        bundle = served.bundle
        if (user_index is None) == (msno is None):
            raise InvalidParameterError("give exactly one of user_id or msno")
        if msno is not None:
            user_index = int(bundle.users.lookup([msno])[0])
        assert user_index is not None
        if user_index < 0 or user_index >= len(bundle.users):
            song_ids, scores = self._popular(served, n, None)
            return Recommendations(served.model_id, song_ids, scores, True, None, msno)
        top = served.top
        if top.answers(n, filter_heard):
            assert top.ids is not None and top.scores is not None  # scores are set before ids
            row_ids, row_values = top.ids[user_index, :n], top.scores[user_index, :n]
        else:
            heard = bundle.heard[[user_index]] if filter_heard else None
            ids, values = bundle.model.recommend(np.array([user_index]), n, heard)
            row_ids, row_values = ids[0], values[0]
        keep = row_ids >= 0
        return Recommendations(
            served.model_id,
            bundle.songs.ids[row_ids[keep]].tolist(),
            row_values[keep].astype(float).tolist(),
            False,
            user_index,
            str(bundle.users.ids[user_index]),
        )

    def for_history(
        self, song_ids: list[str], n: int, filter_heard: bool = True
    ) -> Recommendations:
        """Top-n for a listener the model never saw, by fold-in of the songs they played."""
        _check_n(n)
        served = self.served()
        bundle = served.bundle
        indices = bundle.songs.lookup(song_ids)
        unknown = [s for s, i in zip(song_ids, indices, strict=True) if i < 0]
        known = np.unique(indices[indices >= 0])
        if known.size == 0:
            ids, scores = self._popular(served, n, None)
            return Recommendations(served.model_id, ids, scores, True, unknown_songs=unknown)
        top, values = bundle.model.recommend_for_history(known, n, filter_heard=filter_heard)
        keep = top >= 0
        return Recommendations(
            served.model_id,
            bundle.songs.ids[top[keep]].tolist(),
            values[keep].astype(float).tolist(),
            False,
            unknown_songs=unknown,
        )

    def users(self, limit: int, offset: int) -> tuple[list[tuple[int, str]], int]:
        bundle = self.served().bundle
        total = len(bundle.users)
        stop = min(total, offset + limit)
        return [(i, str(bundle.users.ids[i])) for i in range(offset, stop)], total

    def heard_songs(self, user_index: int, limit: int = 50) -> list[str]:
        """Songs a known listener has in the model's training data (their history)."""
        bundle = self.served().bundle
        if not 0 <= user_index < len(bundle.users):
            return []
        row = bundle.heard[user_index]
        return bundle.songs.ids[row.indices[:limit]].tolist()

    def details(self, song_ids: list[str], scores: list[float]) -> list[dict[str, Any]]:
        items = []
        for song_id, score in zip(song_ids, scores, strict=True):
            item: dict[str, Any] = {"song_id": song_id, "score": score}
            meta = self.song_metadata.get(song_id)
            if meta:
                item.update({k: v for k, v in meta.items() if k != "song_id"})
            items.append(item)
        return items


def _check_n(n: int) -> None:
    if not 1 <= n <= MAX_N:
        raise InvalidParameterError(f"n must be between 1 and {MAX_N}, got {n}")
