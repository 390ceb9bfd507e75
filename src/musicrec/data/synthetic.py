"""KKBox-schema synthetic listening logs with a planted taste model, at any scale.

Taste is planted as a mixture: each song belongs to one of K taste clusters and has a Zipf
popularity weight w_s; each listener has cluster shares θ_u ~ Dirichlet(concentration). A
listen comes from global popularity with probability ``global_share``, else from the
listener's taste:  p(s | u) = g·w_s/W + (1−g)·θ_u[c(s)]·w_s/W_c(s).  That matrix has rank
<= K + 1, and ranking songs by p(s | u) is the best any model can do (the *oracle*), reported
beside real models as the ceiling. The planted state is saved next to the data
(``<file>.planted.npz``) so evaluation can rebuild the oracle.

Generation streams users in chunks (bounded memory) and is deterministic for a seed.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import scipy.sparse as sp

from musicrec.data.encoding import IdMap
from musicrec.errors import InvalidParameterError
from musicrec.models.base import ProgressCallback, Recommender

FULL_KKBOX = {"rows": 7_377_418, "users": 30_755, "songs": 359_966}

# (source_system_tab, source_screen_name, source_type, share, target logit shift): the most
# frequent combinations of the real KKBox sample; replays from one's own library are likelier.
SOURCE_CONTEXTS: tuple[tuple[str, str | None, str | None, float, float], ...] = (
    ("my library", "Local playlist more", "local-library", 0.22, 0.6),
    ("my library", "Local playlist more", "local-playlist", 0.12, 0.5),
    ("discover", "Online playlist more", "online-playlist", 0.14, -0.2),
    ("search", "Search", "song", 0.05, 0.2),
    ("discover", "Discover Feature", "online-playlist", 0.05, -0.3),
    ("radio", "Radio", "radio", 0.06, -0.8),
    ("my library", "My library", "local-library", 0.05, 0.4),
    ("discover", "Album more", "album", 0.04, 0.0),
    ("explore", "Explore", "online-playlist", 0.04, -0.3),
    ("listen with", "Others profile more", "listen-with", 0.05, -0.6),
    ("discover", "Artist more", "top-hits-for-artist", 0.06, 0.0),
    ("search", "Search Trends", "song", 0.03, 0.1),
    ("my library", None, "local-library", 0.05, 0.5),
    ("notification", None, None, 0.02, -0.5),
    ("settings", None, "local-library", 0.02, 0.0),
)


@dataclass(frozen=True)
class SyntheticSpec:
    """Scale and shape of a generated set; defaults give a small realistic sample."""

    rows: int = 100_000
    users: int = 2_000
    songs: int = 20_000
    clusters: int = 32
    zipf_exponent: float = 0.9
    activity_sigma: float = 1.0
    global_share: float = 0.3
    taste_concentration: float = 0.1
    seed: int = 42

    def validate(self) -> None:
        if self.users < 1 or self.songs < 2 or self.rows < self.users:
            raise InvalidParameterError(
                "need users >= 1, songs >= 2 and rows >= users "
                f"(got rows={self.rows}, users={self.users}, songs={self.songs})"
            )
        if self.rows > self.users * (self.songs // 2):
            raise InvalidParameterError(
                f"rows={self.rows} is more than users x songs/2: listeners would have to "
                "play half the catalogue"
            )
        if not 0.0 <= self.global_share <= 1.0:
            raise InvalidParameterError("global_share must be in [0, 1]")
        if self.clusters < 1:
            raise InvalidParameterError("clusters must be at least 1")


@dataclass
class PlantedTaste:
    """The generator's hidden state: enough to compute p(s | u) for every pair."""

    user_ids: np.ndarray
    song_ids: np.ndarray
    theta: np.ndarray  # users x clusters
    song_cluster: np.ndarray  # songs
    song_weight: np.ndarray  # songs, Zipf weight
    global_share: float

    def song_probabilities(self) -> tuple[np.ndarray, np.ndarray]:
        """(global p(s), within-cluster p(s | c(s)))."""
        weight = self.song_weight.astype(np.float64)
        cluster_total = np.bincount(self.song_cluster, weights=weight)
        return weight / weight.sum(), weight / cluster_total[self.song_cluster]

    def scores(self, user_rows: np.ndarray) -> np.ndarray:
        """p(s | u) for the given planted user rows, shape (len(user_rows), n_songs)."""
        global_p, within_p = self.song_probabilities()
        taste = self.theta[user_rows][:, self.song_cluster] * within_p
        return self.global_share * global_p + (1.0 - self.global_share) * taste

    def pair_scores(self, user_rows: np.ndarray, song_rows: np.ndarray) -> np.ndarray:
        """p(s | u) for each (planted user row, planted song row) pair."""
        global_p, within_p = self.song_probabilities()
        taste = self.theta[user_rows, self.song_cluster[song_rows]] * within_p[song_rows]
        return self.global_share * global_p[song_rows] + (1.0 - self.global_share) * taste

    def save(self, path: Path) -> None:
        with open(path, "wb") as handle:
            np.savez(
                handle,
                user_ids=self.user_ids,
                song_ids=self.song_ids,
                theta=self.theta,
                song_cluster=self.song_cluster,
                song_weight=self.song_weight,
                global_share=np.array([self.global_share]),
            )

    @classmethod
    def load(cls, path: Path) -> PlantedTaste:
        with np.load(path, allow_pickle=False) as npz:
            return cls(
                user_ids=npz["user_ids"],
                song_ids=npz["song_ids"],
                theta=npz["theta"],
                song_cluster=npz["song_cluster"],
                song_weight=npz["song_weight"],
                global_share=float(npz["global_share"][0]),
            )


def planted_path(data_path: Path) -> Path:
    """Where the planted state of a generated file lives."""
    return data_path.with_name(data_path.name + ".planted.npz")


class OracleRecommender(Recommender):
    """Ranks by the planted p(s | u): the ceiling for any model on generated data."""

    model_type: ClassVar[str] = "oracle"

    def __init__(self, planted: PlantedTaste, users: IdMap, songs: IdMap) -> None:
        self.planted = planted
        self.user_rows = IdMap(planted.user_ids).lookup(users.ids)
        self.song_rows = IdMap(planted.song_ids).lookup(songs.ids)
        if (self.user_rows < 0).any() or (self.song_rows < 0).any():
            raise InvalidParameterError("the planted state does not match this data set")
        self._users, self._songs = len(users), len(songs)

    def fit(self, user_items: sp.csr_matrix, progress: ProgressCallback | None = None) -> None:
        """The oracle knows the truth; there is nothing to learn."""

    @property
    def n_songs(self) -> int:
        return self._songs

    @property
    def n_users(self) -> int:
        return self._users

    def user_scores(self, user_indices: np.ndarray) -> np.ndarray:
        return self.planted.scores(self.user_rows[user_indices])[:, self.song_rows]

    def history_scores(self, song_indices: np.ndarray, values: np.ndarray) -> np.ndarray:
        raise InvalidParameterError("the oracle only scores listeners it generated")

    def pair_scores(self, user_indices: np.ndarray, song_indices: np.ndarray) -> np.ndarray:
        users = self.user_rows[np.asarray(user_indices)]
        songs = self.song_rows[np.asarray(song_indices)]
        return self.planted.pair_scores(users, songs)

    def params(self) -> dict[str, Any]:
        return {}

    def arrays(self) -> dict[str, np.ndarray]:
        return {}

    @classmethod
    def from_arrays(cls, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> Recommender:
        raise InvalidParameterError("the oracle is not saved as a model")


def _kkbox_like_ids(rng: np.random.Generator, count: int) -> np.ndarray:
    """44-character base64 ids (32 random bytes), like KKBox's hashed msno/song_id."""
    raw = rng.integers(0, 256, size=(count, 32), dtype=np.uint8)
    return np.array([base64.b64encode(row.tobytes()).decode("ascii") for row in raw])


def _user_activity(rng: np.random.Generator, spec: SyntheticSpec) -> np.ndarray:
    """Lognormal listens per user, summing to exactly spec.rows, each in [1, songs // 2]."""
    cap = spec.songs // 2
    raw = rng.lognormal(0.0, spec.activity_sigma, spec.users)
    share = raw / raw.sum() * spec.rows
    counts = np.clip(np.floor(share).astype(np.int64), 1, cap)
    remainder = spec.rows - int(counts.sum())
    order = np.argsort(-(share - np.floor(share)))
    while remainder != 0:
        step = 1 if remainder > 0 else -1
        eligible = order[(counts[order] < cap) if step > 0 else (counts[order] > 1)]
        take = eligible[: abs(remainder)]
        counts[take] += step
        remainder -= step * take.shape[0]
    return counts


def _draw(cumulative: np.ndarray, offsets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sample from many categorical distributions stored as offset cumulative sums."""
    return np.searchsorted(cumulative, offsets + rng.random(offsets.shape[0]), side="right")


class _Sampler:
    def __init__(self, spec: SyntheticSpec, planted: PlantedTaste) -> None:
        self.spec = spec
        self.planted = planted
        global_p, within_p = planted.song_probabilities()
        self.global_cum = np.cumsum(global_p)
        self.global_cum /= self.global_cum[-1]
        order = np.argsort(planted.song_cluster, kind="stable")
        self.cluster_songs = order
        sorted_clusters = planted.song_cluster[order]
        within_cum = np.cumsum(within_p[order])
        starts = np.searchsorted(sorted_clusters, np.arange(spec.clusters))
        base = np.concatenate(([0.0], within_cum))[starts]
        # Each cluster's cumulative probabilities run from k to k + 1.
        self.cluster_cum = within_cum - base[sorted_clusters] + sorted_clusters
        theta_cum = np.cumsum(planted.theta, axis=1)
        self.theta_cum = (theta_cum / theta_cum[:, -1:] + np.arange(spec.users)[:, None]).ravel()

    def songs_for(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from_global = rng.random(size=(users.shape[0],)) < self.spec.global_share
        songs = np.empty(users.shape[0], dtype=np.int64)
        n_global = int(from_global.sum())
        songs[from_global] = np.minimum(
            np.searchsorted(self.global_cum, rng.random(n_global), side="right"),
            self.spec.songs - 1,
        )
        taste_users = users[~from_global]
        flat = _draw(self.theta_cum, taste_users.astype(np.float64), rng)
        clusters = np.minimum(flat - taste_users * self.spec.clusters, self.spec.clusters - 1)
        position = _draw(self.cluster_cum, clusters.astype(np.float64), rng)
        songs[~from_global] = self.cluster_songs[np.minimum(position, self.spec.songs - 1)]
        return songs


def _unique_pairs_per_user(
    sampler: _Sampler, users: np.ndarray, counts: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Exactly counts[i] distinct songs for each user in ``users`` (redrawing repeats)."""
    n_songs = sampler.spec.songs
    need = counts.copy()
    kept_keys = np.empty(0, dtype=np.int64)
    for attempt in range(50):
        short = need > 0
        if not short.any():
            break
        draw_users = np.repeat(users[short], np.ceil(need[short] * 1.3).astype(np.int64) + 1)
        if attempt < 10:
            songs = sampler.songs_for(draw_users, rng)
        else:  # stubborn heavy listeners: fill from the whole catalogue
            songs = rng.integers(0, n_songs, draw_users.shape[0])
        keys = np.concatenate((kept_keys, draw_users.astype(np.int64) * n_songs + songs))
        _, first = np.unique(keys, return_index=True)
        keys = keys[np.sort(first)]
        key_users = keys // n_songs
        order = np.argsort(key_users, kind="stable")
        sorted_users = key_users[order]
        starts = np.searchsorted(sorted_users, sorted_users, side="left")
        rank = np.arange(sorted_users.shape[0]) - starts
        wanted = counts[np.searchsorted(users, sorted_users)]
        kept_keys = keys[order][rank < wanted]
        have = np.bincount(np.searchsorted(users, kept_keys // n_songs), minlength=users.shape[0])
        need = counts - have
    return (kept_keys // n_songs).astype(np.int64), (kept_keys % n_songs).astype(np.int64)


def generate(
    path: str | Path,
    spec: SyntheticSpec,
    progress: Callable[[int, int], None] | None = None,
    rows_per_chunk: int = 500_000,
) -> dict[str, Any]:
    """Write a KKBox-schema file (CSV, or Parquet for *.parquet) and its planted state.

    Returns a summary: rows, distinct users and songs that occur, target share, paths.
    """
    spec.validate()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    user_ids = _kkbox_like_ids(rng, spec.users)
    song_ids = _kkbox_like_ids(rng, spec.songs)
    zipf_rank = rng.permutation(spec.songs) + 1
    planted = PlantedTaste(
        user_ids=user_ids,
        song_ids=song_ids,
        theta=rng.dirichlet(np.full(spec.clusters, spec.taste_concentration), spec.users),
        song_cluster=rng.integers(0, spec.clusters, spec.songs),
        song_weight=(1.0 / zipf_rank.astype(np.float64) ** spec.zipf_exponent),
        global_share=spec.global_share,
    )
    activity = _user_activity(rng, spec)
    sampler = _Sampler(spec, planted)
    contexts = SOURCE_CONTEXTS
    context_share = np.array([c[3] for c in contexts])
    context_cum = np.cumsum(context_share / context_share.sum())
    context_shift = np.array([c[4] for c in contexts])
    context_columns = [pa.array([c[i] for c in contexts], type=pa.string()) for i in range(3)]

    is_parquet = path.suffix.lower() == ".parquet"
    schema = pa.schema(
        [
            ("msno", pa.string()),
            ("song_id", pa.string()),
            ("source_system_tab", pa.string()),
            ("source_screen_name", pa.string()),
            ("source_type", pa.string()),
            ("target", pa.int8()),
        ]
    )
    tmp_path = path.with_name(f".{path.name}.partial")
    writer: pq.ParquetWriter | pacsv.CSVWriter
    writer = pq.ParquetWriter(tmp_path, schema) if is_parquet else pacsv.CSVWriter(tmp_path, schema)
    written, positives = 0, 0
    seen_songs = np.zeros(spec.songs, dtype=bool)
    try:
        start = 0
        while start < spec.users:
            stop = start + 1
            total = int(activity[start])
            while stop < spec.users and total + activity[stop] <= rows_per_chunk:
                total += int(activity[stop])
                stop += 1
            users = np.arange(start, stop)
            row_users, row_songs = _unique_pairs_per_user(sampler, users, activity[start:stop], rng)
            shuffle = rng.permutation(row_users.shape[0])
            row_users, row_songs = row_users[shuffle], row_songs[shuffle]
            context = np.minimum(
                np.searchsorted(context_cum, rng.random(row_users.shape[0]), side="right"),
                len(contexts) - 1,
            )
            affinity = planted.theta[row_users, planted.song_cluster[row_songs]] * spec.clusters
            logit = -0.2 + 0.5 * np.clip(np.log(affinity + 1e-9), -4, 3) + context_shift[context]
            target = (rng.random(row_users.shape[0]) < 1 / (1 + np.exp(-logit))).astype(np.int8)
            indices = pa.array(context)
            # pa.table, not record_batch: pyarrow chunks large numpy string arrays.
            batch = pa.table(
                [
                    pa.array(user_ids[row_users]),
                    pa.array(song_ids[row_songs]),
                    *(column.take(indices) for column in context_columns),
                    pa.array(target),
                ],
                schema=schema,
            )
            writer.write_table(batch)
            written += batch.num_rows
            positives += int(target.sum())
            seen_songs[row_songs] = True
            if progress:
                progress(written, spec.rows)
            start = stop
    finally:
        writer.close()
    tmp_path.replace(path)
    planted.save(planted_path(path))
    return {
        "path": str(path),
        "planted": str(planted_path(path)),
        "rows": written,
        "users": spec.users,
        "songs_in_catalogue": spec.songs,
        "songs_played": int(seen_songs.sum()),
        "target_share": round(positives / max(1, written), 4),
        "seed": spec.seed,
    }
