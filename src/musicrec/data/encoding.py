"""Id encoding (msno/song_id <-> dense int) and the user x song confidence matrix."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp

from musicrec.errors import InvalidParameterError

ConfidenceName = Literal["positives", "weighted", "all-listens"]


@dataclass
class IdMap:
    """A stable mapping between external string ids and dense indices 0..n-1."""

    ids: np.ndarray  # fixed-width unicode, index -> id
    _index: pd.Index | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def build_index(self) -> pd.Index:
        """The hash index behind ``lookup``, built on first use (or ahead, by a server)."""
        if self._index is None:
            self._index = pd.Index(self.ids)
        return self._index

    def lookup(self, external_ids: np.ndarray | list[str]) -> np.ndarray:
        """Indices of the given ids, -1 for ids this map does not know."""
        index = self.build_index()
        return np.asarray(index.get_indexer(pd.Index(np.asarray(external_ids, dtype=object))))


@dataclass
class EncodedInteractions:
    """Listening events as dense integer codes, one entry per event row."""

    user_codes: np.ndarray  # int32
    song_codes: np.ndarray  # int32
    target: np.ndarray  # int8 0/1
    users: IdMap
    songs: IdMap

    @property
    def n_rows(self) -> int:
        return int(self.user_codes.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.users), len(self.songs)


def _encode_column(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    if pa.types.is_dictionary(column.type) and column.num_chunks == 1:
        encoded = column.chunk(0)  # already encoded by the loader, in appearance order
    else:
        encoded = column.combine_chunks().dictionary_encode()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    ids = np.asarray(encoded.dictionary.to_numpy(zero_copy_only=False)).astype(str)
    return codes, ids


def encode_interactions(table: pa.Table) -> EncodedInteractions:
    """Give every user and song a dense index, in order of first appearance (deterministic)."""
    user_codes, user_ids = _encode_column(table.column("msno"))
    song_codes, song_ids = _encode_column(table.column("song_id"))
    target = table.column("target").to_numpy().astype(np.int8, copy=False)
    return EncodedInteractions(user_codes, song_codes, target, IdMap(user_ids), IdMap(song_ids))


@dataclass(frozen=True)
class ConfidenceScheme:
    """How listening events become the value r of a (user, song) cell.

    A listen followed by a re-listen (target=1) adds ``positive_weight``; a listen without one
    (target=0) adds ``negative_weight``. Repeated rows of the same pair add up. ALS then turns
    r into confidence 1 + alpha * r (Hu, Koren & Volinsky 2008); cells with r = 0 are unobserved.
    """

    name: str
    positive_weight: float
    negative_weight: float


CONFIDENCE_SCHEMES: dict[str, ConfidenceScheme] = {
    # Measured on the bundled sample over 5 seeds (README, "Choosing the defaults").
    "positives": ConfidenceScheme("positives", 1.0, 0.0),
    "weighted": ConfidenceScheme("weighted", 1.0, 0.5),
    "all-listens": ConfidenceScheme("all-listens", 1.0, 1.0),
}
DEFAULT_CONFIDENCE = "all-listens"


def confidence_scheme(name: str) -> ConfidenceScheme:
    """The named scheme, or a clear error listing the known names."""
    try:
        return CONFIDENCE_SCHEMES[name]
    except KeyError:
        known = ", ".join(CONFIDENCE_SCHEMES)
        raise InvalidParameterError(
            f"unknown confidence scheme {name!r}; use one of {known}"
        ) from None


def interaction_matrix(
    data: EncodedInteractions,
    scheme: ConfidenceScheme,
    rows: np.ndarray | None = None,
) -> sp.csr_matrix:
    """The users x songs matrix of values r (float32, duplicates summed, zeros dropped).

    ``rows`` (a boolean mask or index array over event rows) restricts it to a training part;
    the shape always covers every known user and song so indices stay valid across splits.
    """
    users, songs, target = data.user_codes, data.song_codes, data.target
    if rows is not None:
        users, songs, target = users[rows], songs[rows], target[rows]
    values = np.where(target == 1, scheme.positive_weight, scheme.negative_weight).astype(
        np.float32
    )
    matrix = sp.csr_matrix((values, (users, songs)), shape=data.shape, dtype=np.float32)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return matrix


def positives_matrix(data: EncodedInteractions, rows: np.ndarray | None = None) -> sp.csr_matrix:
    """Binary matrix of (user, song) pairs with at least one target=1 event."""
    matrix = interaction_matrix(data, CONFIDENCE_SCHEMES["positives"], rows)
    matrix.data[:] = 1.0
    return matrix


def heard_matrix(data: EncodedInteractions, rows: np.ndarray | None = None) -> sp.csr_matrix:
    """Binary matrix of every (user, song) pair that occurs at all: what a listener has heard."""
    matrix = interaction_matrix(data, CONFIDENCE_SCHEMES["all-listens"], rows)
    matrix.data[:] = 1.0
    return matrix
