"""EDA of a listening log: the bundled sample, or an uploaded CSV/Parquet file."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st
from matplotlib.figure import Figure

from musicrec.config import SAMPLE_SONGS_CSV, SAMPLE_TRAIN_CSV
from musicrec.data.loading import load_interactions, load_songs
from musicrec.errors import MusicrecError
from musicrec.ui import eda


@st.cache_data(show_spinner="reading and validating the file…", max_entries=4)
def read_log(path: str, _digest: str) -> pd.DataFrame:
    """The project's loader: same validation and messages as the CLI and API."""
    return load_interactions(path).to_pandas()


@st.cache_data(max_entries=1)
def read_songs(path: str) -> pd.DataFrame:
    return load_songs(path)


@st.cache_data(max_entries=8)
def figures(_frame: pd.DataFrame, digest: str) -> dict[str, Figure]:
    return {
        "by_tab": eda.target_by_value(_frame, "source_system_tab"),
        "tab_pairs": eda.pairwise_target_grid(_frame, "source_system_tab"),
        "type_pairs": eda.pairwise_target_grid(_frame, "source_type"),
        "tail": eda.long_tail(_frame),
    }


st.title("Exploring the listening log")
upload = st.file_uploader("Upload a KKBox-style CSV or Parquet file", type=["csv", "parquet"])
if upload is None:
    source, digest = str(SAMPLE_TRAIN_CSV), "sample"
    st.caption(
        f"Showing the bundled sample `{SAMPLE_TRAIN_CSV.name}`; upload a file to explore it."
    )
else:
    payload = upload.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    target = Path(tempfile.gettempdir()) / f"musicrec-eda-{digest[:16]}"
    if not target.exists():
        target.write_bytes(payload)
    source = str(target)

try:
    frame = read_log(source, digest)
except MusicrecError as exc:
    name = upload.name if upload is not None else SAMPLE_TRAIN_CSV.name
    st.error(f"{name} cannot be used: {str(exc).replace(source, name)}")
    st.stop()

left, middle, right = st.columns(3)
left.metric("listening events", f"{len(frame):,}")
middle.metric("listeners", f"{frame['msno'].nunique():,}")
right.metric("songs", f"{frame['song_id'].nunique():,}")

st.subheader("First 50 rows")
st.dataframe(frame.head(50), width="stretch")
col_a, col_b, col_c = st.columns(3)
with col_a:
    st.subheader("Missing values")
    st.dataframe(eda.missing_values(frame))
with col_b:
    st.subheader("Target")
    st.dataframe(eda.target_distribution(frame))
with col_c:
    st.subheader("Text columns")
    st.dataframe(eda.describe_text_columns(frame))

plots = figures(frame, digest)
st.subheader("source_system_tab by target")
st.pyplot(plots["by_tab"])
st.subheader("Pairs of source_system_tab values: target shares")
st.pyplot(plots["tab_pairs"])
st.subheader("Pairs of source_type values: target shares")
st.pyplot(plots["type_pairs"])
st.subheader("Events per listener and per song (log scale)")
st.pyplot(plots["tail"])

songs = read_songs(str(SAMPLE_SONGS_CSV)) if SAMPLE_SONGS_CSV.exists() else None
st.subheader("Top songs")
st.dataframe(eda.top_songs(frame, songs))
if songs is not None:
    artists = eda.top_artists(frame, songs)
    st.subheader("Top artists")
    st.caption(f"songs.csv covers {artists.attrs['coverage']:.0%} of these events")
    st.dataframe(artists)
