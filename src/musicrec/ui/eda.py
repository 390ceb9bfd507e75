"""The EDA page's computations: tables and matplotlib figures from a validated listening log."""

from __future__ import annotations

from itertools import combinations

import matplotlib

matplotlib.use("Agg")  # no display: figures are rendered to images for the page

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from musicrec.data.schema import CATEGORICAL_COLUMNS, UNKNOWN

# Pair grids show the most frequent values only: 6 values make 15 subplots, still readable.
MAX_PAIR_VALUES = 6


def missing_values(frame: pd.DataFrame) -> pd.DataFrame:
    """Gaps per column; the loader keeps a missing source as the category 'unknown'."""
    counts = {}
    for column in frame.columns:
        if column in CATEGORICAL_COLUMNS:
            counts[column] = int((frame[column] == UNKNOWN).sum())
        else:
            counts[column] = int(frame[column].isna().sum())
    table = pd.DataFrame({"missing": counts})
    table["share"] = (table["missing"] / max(1, len(frame))).round(4)
    return table


def describe_text_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """count / unique / top / freq of the non-numeric columns (pandas' describe(exclude=int))."""
    return frame.select_dtypes(exclude="number").describe()


def target_distribution(frame: pd.DataFrame) -> pd.DataFrame:
    shares = frame["target"].value_counts(normalize=True).sort_index()
    return pd.DataFrame({"share": shares.round(4)})


def target_by_value(frame: pd.DataFrame, column: str) -> Figure:
    """Histogram of a source column split by target (listens by value, 0 and 1 side by side)."""
    counts = frame.groupby([column, "target"], observed=True).size().unstack(fill_value=0)
    counts = counts.loc[counts.sum(axis=1).sort_values(ascending=False).index]
    figure, axis = plt.subplots(figsize=(9, 4))
    positions = np.arange(len(counts))
    width = 0.4
    for offset, target in ((-width / 2, 0), (width / 2, 1)):
        values = counts[target] if target in counts else np.zeros(len(counts))
        axis.bar(positions + offset, values, width, label=f"target={target}")
    axis.set_xticks(positions, counts.index, rotation=35, ha="right")
    axis.set_ylabel("listening events")
    axis.set_title(f"{column} by target")
    axis.legend()
    figure.tight_layout()
    return figure


def pairwise_target_grid(frame: pd.DataFrame, column: str) -> Figure:
    """One subplot per pair of the column's most frequent values: their target=1/0 shares."""
    values = frame[column].value_counts().index[:MAX_PAIR_VALUES].tolist()
    pairs = list(combinations(values, 2)) or [(values[0], values[0])]
    shares = frame[frame[column].isin(values)].groupby(column, observed=True)["target"].mean()
    columns = min(4, len(pairs))
    rows = -(-len(pairs) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows), squeeze=False)
    for axis, (left, right) in zip(axes.ravel(), pairs, strict=False):
        ones = [shares.get(left, 0.0), shares.get(right, 0.0)]
        axis.bar([0, 1], ones, color="#1f77b4", label="target=1")
        axis.bar([0, 1], [1 - v for v in ones], bottom=ones, color="#ff7f0e", label="target=0")
        axis.set_xticks([0, 1], [str(left)[:14], str(right)[:14]], fontsize=7)
        axis.set_ylim(0, 1)
        axis.tick_params(axis="y", labelsize=7)
    for axis in axes.ravel()[len(pairs) :]:
        axis.axis("off")
    axes[0][0].legend(fontsize=7)
    figure.suptitle(f"target share, pairs of {column} values")
    figure.tight_layout()
    return figure


def long_tail(frame: pd.DataFrame) -> Figure:
    """Events per listener and per song on log axes: the long tail a recommender lives with."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for axis, column, label in ((axes[0], "msno", "listener"), (axes[1], "song_id", "song")):
        counts = frame[column].value_counts().to_numpy()
        bins = np.logspace(0, np.log10(max(2, counts.max())), 30)
        axis.hist(counts, bins=bins)
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel(f"events per {label}")
        axis.set_ylabel(f"{label}s")
    figure.tight_layout()
    return figure


def top_songs(frame: pd.DataFrame, songs: pd.DataFrame | None, n: int = 15) -> pd.DataFrame:
    """Most-played songs, with artist and name where the metadata covers them."""
    counts = frame["song_id"].value_counts().head(n).rename("events").to_frame()
    if songs is not None and "artist_name" in songs:
        counts = counts.join(songs.set_index("song_id")[["artist_name"]], how="left")
    return counts


def top_artists(frame: pd.DataFrame, songs: pd.DataFrame, n: int = 15) -> pd.DataFrame:
    """Most-played artists among the songs the metadata covers (it covers only part)."""
    joined = frame[["song_id"]].merge(songs[["song_id", "artist_name"]], on="song_id")
    covered = len(joined) / max(1, len(frame))
    table = joined["artist_name"].value_counts().head(n).rename("events").to_frame()
    table.attrs["coverage"] = covered
    return table
