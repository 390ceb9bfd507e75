"""The loader: fast path on valid files, clear errors naming file, column and row otherwise."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from musicrec.data.loading import load_interactions, load_members, load_songs
from musicrec.data.schema import UNKNOWN
from musicrec.errors import DataValidationError
from tests.conftest import HEADER, PROJECT_ROOT

GOOD_ROW = "u1,s1,my library,Local playlist more,local-library,1\n"


def test_bundled_sample_loads_and_drops_unnamed_index(sample_csv):
    table = load_interactions(sample_csv)
    assert table.num_rows == 10_000
    assert table.column_names == [
        "msno",
        "song_id",
        "source_system_tab",
        "source_screen_name",
        "source_type",
        "target",
    ]
    assert table.column("msno").combine_chunks().unique().__len__() == 1622
    assert table.column("target").type == pa.int8()
    share = pc_mean(table)
    assert share == pytest.approx(0.773, abs=0.001)


def pc_mean(table: pa.Table) -> float:
    return float(table.column("target").to_numpy().mean())


def test_kaggle_file_without_index_column(write_csv):
    path = write_csv(HEADER + GOOD_ROW + "u2,s1,discover,,online-playlist,0\n")
    table = load_interactions(path)
    assert table.num_rows == 2
    assert table.column("target").to_pylist() == [1, 0]


def test_missing_categorical_values_become_unknown(write_csv):
    path = write_csv(HEADER + "u1,s1,,,online-playlist,1\n" + GOOD_ROW)
    table = load_interactions(path)
    assert table.column("source_system_tab").to_pylist()[0] == UNKNOWN
    assert table.column("source_screen_name").to_pylist()[0] == UNKNOWN
    assert table.num_rows == 2  # kept, not dropped


def test_absent_categorical_columns_are_filled(write_csv):
    table = load_interactions(write_csv("msno,song_id,target\nu1,s1,1\n"))
    assert table.column("source_type").to_pylist() == [UNKNOWN]


def test_parquet_is_read_like_csv(tmp_path, sample_csv):
    frame = pd.read_csv(sample_csv, index_col=0)
    path = tmp_path / "train.parquet"
    frame.to_parquet(path)
    table = load_interactions(path)
    assert table.num_rows == 10_000
    assert table.column("target").to_pylist()[:5] == frame["target"].tolist()[:5]


def test_parquet_detected_by_content_not_extension(tmp_path):
    path = tmp_path / "looks_like.csv"
    pq.write_table(pa.table({"msno": ["a"], "song_id": ["b"], "target": [1]}), path)
    assert load_interactions(path).num_rows == 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("", "file is empty", id="empty-file"),
        pytest.param(HEADER, "no data rows", id="header-only"),
        pytest.param(
            "msno,target\nu1,1\n", "missing required column(s) song_id", id="missing-column"
        ),
        pytest.param(
            "user;song;target\nu1;s1;1\n",
            "missing required column(s) msno, song_id, target",
            id="wrong-delimiter",
        ),
        pytest.param(
            HEADER + GOOD_ROW + "u2,s2,a,b,c,yes\n", "'yes' at row 2 (line 3)", id="target-text"
        ),
        pytest.param(HEADER + GOOD_ROW + "u2,s2,a,b,c,2\n", "'2' at row 2 (line 3)", id="target-2"),
        pytest.param(HEADER + "u2,s2,a,b,c,\n", "empty value at row 1 (line 2)", id="target-blank"),
        pytest.param(
            HEADER + GOOD_ROW + ",s2,a,b,c,1\n", "'msno' is empty at row 2", id="blank-msno"
        ),
        pytest.param(
            HEADER + GOOD_ROW + "u3, ,a,b,c,1\n", "'song_id' is empty at row 2", id="blank-song"
        ),
        pytest.param(
            HEADER + GOOD_ROW + "u2,s2,a\n", "line 3 has 3 fields, the header has 6", id="ragged"
        ),
        pytest.param(
            HEADER.encode() + GOOD_ROW.encode() + "u2,s2,é,b,c,1\n".encode("latin-1"),
            "line 3 is not valid UTF-8",
            id="latin1-row",
        ),
        pytest.param("msno,song_id,target\n".encode("utf-16"), "not a CSV file", id="utf16"),
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a CSV file (binary", id="png"),
        pytest.param(b"PAR1 not really parquet", "not a readable Parquet file", id="fake-parquet"),
        pytest.param("\n\nmsno,song_id,target\n", "header) is empty", id="blank-header"),
    ],
)
def test_malformed_files_fail_with_a_clear_message(write_csv, content, expected):
    path = write_csv(content)
    with pytest.raises(DataValidationError) as info:
        load_interactions(path)
    message = str(info.value)
    assert expected in message
    assert str(path) in message  # the message names the file


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataValidationError, match="file not found"):
        load_interactions(tmp_path / "nope.csv")
    with pytest.raises(DataValidationError, match="is a directory"):
        load_interactions(tmp_path)


def test_parquet_bad_target_names_row(tmp_path):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"msno": ["a", "b"], "song_id": ["x", "y"], "target": [1, 7]}), path)
    with pytest.raises(DataValidationError, match=r"'7' at row 2\b"):
        load_interactions(path)


def test_songs_and_members_side_tables():
    songs = load_songs(PROJECT_ROOT / "data" / "sample" / "kkbox_songs.csv")
    assert {"song_id", "artist_name", "genre_ids"} <= set(songs.columns)
    assert songs["song_id"].is_unique
    members = load_members(PROJECT_ROOT / "data" / "sample" / "kkbox_members.csv")
    assert len(members) == 34_403
    assert "city" in members.columns


def test_side_table_without_key(write_csv):
    with pytest.raises(DataValidationError, match="missing required column"):
        load_songs(write_csv("name,artist\na,b\n", "songs.csv"))
