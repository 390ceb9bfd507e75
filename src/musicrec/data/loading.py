"""Load and validate KKBox-schema files (CSV or Parquet) into Arrow tables, fast.

CSV goes through pyarrow's multi-threaded reader; Python only looks at rows again on the error
path, to name the first offending line.
"""

from __future__ import annotations

import csv
import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from musicrec.data.schema import (
    CATEGORICAL_COLUMNS,
    INTERACTION_COLUMNS,
    MEMBER_COLUMNS,
    REQUIRED_COLUMNS,
    SONG_COLUMNS,
    TARGET_VALUES,
    UNKNOWN,
    row_label,
)
from musicrec.errors import DataValidationError

PARQUET_MAGIC = b"PAR1"
_SNIFF_BYTES = 64 * 1024
# Header names pandas gives an unnamed index column when a DataFrame was saved with its index.
_INDEX_COLUMN_NAMES = {"", "Unnamed: 0"}


def file_fingerprint(path: Path) -> str:
    """sha256 of a file's bytes: identifies the data a model was trained on."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == PARQUET_MAGIC


def _check_readable_file(path: Path) -> None:
    if not path.exists():
        raise DataValidationError(f"{path}: file not found")
    if path.is_dir():
        raise DataValidationError(f"{path}: is a directory, expected a CSV or Parquet file")
    if path.stat().st_size == 0:
        raise DataValidationError(f"{path}: file is empty")


def _read_csv_header(path: Path) -> list[str]:
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if b"\x00" in head:
        raise DataValidationError(
            f"{path}: not a CSV file (binary content); expected UTF-8 CSV or Parquet"
        )
    first_line = head.split(b"\n", 1)[0].rstrip(b"\r")
    if first_line.startswith(b"\xef\xbb\xbf"):
        first_line = first_line[3:]
    try:
        text = first_line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataValidationError(
            f"{path}: line 1 (header) is not valid UTF-8 (byte {exc.start}); save the file as UTF-8"
        ) from None
    if not text.strip():
        raise DataValidationError(f"{path}: the first line (header) is empty")
    return next(csv.reader([text]))


def _locate_csv_problem(path: Path, n_columns: int) -> str | None:
    """Find the first line that is not UTF-8 or has the wrong number of fields (error path)."""
    with open(path, "rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"line {line_number} is not valid UTF-8 (byte {exc.start}); save as UTF-8"
            if line_number == 1 or not text.strip():
                continue
            fields = next(csv.reader([text]))
            if len(fields) != n_columns:
                return f"line {line_number} has {len(fields)} fields, the header has {n_columns}"
    return None


def _read_csv_table(path: Path, string_columns: tuple[str, ...]) -> pa.Table:
    header = _read_csv_header(path)
    present = [name for name in header if name not in _INDEX_COLUMN_NAMES]
    include = [name for name in string_columns if name in present]
    read_options = pacsv.ReadOptions(use_threads=True, block_size=16 << 20)
    convert_options = pacsv.ConvertOptions(
        include_columns=include,
        column_types=dict.fromkeys(include, pa.string()),
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    try:
        table = pacsv.read_csv(path, read_options=read_options, convert_options=convert_options)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        located = _locate_csv_problem(path, len(header))
        detail = located or str(exc).splitlines()[0]
        raise DataValidationError(f"{path}: not a readable CSV file: {detail}") from None
    return table


def _read_parquet_table(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataValidationError(f"{path}: not a readable Parquet file: {exc}") from None


def _missing_columns_error(
    path: Path, missing: list[str], present: list[str]
) -> DataValidationError:
    shown = ", ".join(present[:10]) or "none"
    return DataValidationError(
        f"{path}: missing required column(s) {', '.join(missing)}; found columns: {shown}"
    )


def _first_index(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _as_string(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_string(column.type):
        return column
    return pc.cast(column, pa.string())


def _encode_ids(path: Path, table: pa.Table, name: str, is_csv: bool) -> pa.DictionaryArray:
    """The id column dictionary-encoded (first appearance order), checked on its dictionary.

    Checking the distinct values instead of every row keeps validation cheap; only when a
    value is bad does the slow path look for the first row that holds it.
    """
    encoded = _as_string(table.column(name)).combine_chunks().dictionary_encode()
    dictionary = encoded.dictionary
    blank_values = pc.equal(pc.utf8_trim_whitespace(dictionary), "")
    if encoded.null_count or pc.any(blank_values).as_py():
        column = _as_string(table.column(name))
        blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(column), ""), True)
        bad = _first_index(blank.to_numpy(zero_copy_only=False))
        raise DataValidationError(
            f"{path}: column '{name}' is empty at {row_label(bad or 0, csv=is_csv)}; "
            f"every listening event needs a {name}"
        )
    return encoded


def _validate_target(path: Path, table: pa.Table, is_csv: bool) -> pa.ChunkedArray:
    column = table.column("target")
    if pa.types.is_integer(column.type) and column.null_count == 0:
        distinct = set(pc.unique(column).to_pylist())
        if distinct <= {0, 1}:
            return pc.cast(column, pa.int8())
    as_text = pc.utf8_trim_whitespace(_as_string(column))
    if pa.types.is_floating(column.type):
        # Parquet writers turn int columns with gaps into float: 1.0 is still a valid target.
        as_text = pc.replace_substring_regex(as_text, r"\.0+$", "")
    distinct_text = pc.unique(as_text)
    if distinct_text.null_count or not set(distinct_text.to_pylist()) <= set(TARGET_VALUES):
        valid = pc.fill_null(pc.is_in(as_text, value_set=pa.array(TARGET_VALUES)), False)
        bad = _first_index(~valid.to_numpy(zero_copy_only=False))
        assert bad is not None
        value = as_text[bad].as_py()
        shown = "an empty value" if value in (None, "") else repr(value)
        raise DataValidationError(
            f"{path}: column 'target' has {shown} at {row_label(bad, csv=is_csv)}; "
            "target must be 0 or 1"
        )
    return pc.cast(pc.equal(as_text, "1"), pa.int8())


TRAINING_COLUMNS: tuple[str, ...] = ("msno", "song_id", "target")


def load_interactions(path: str | Path, *, for_training: bool = False) -> pa.Table:
    """Read a KKBox-schema listening log (CSV or Parquet) and validate it.

    Returns a table with columns msno, song_id, the three source columns (gaps as 'unknown')
    and target as int8 0/1, in file order. Raises DataValidationError naming the file, the
    column and the first offending row.

    ``for_training`` reads only msno, song_id and target, and returns the two id columns
    dictionary-encoded in order of first appearance (what ``encode_interactions`` needs):
    the fast path from a file to the training matrix.
    """
    path = Path(path)
    _check_readable_file(path)
    is_csv = not _is_parquet(path)
    wanted = TRAINING_COLUMNS if for_training else INTERACTION_COLUMNS
    table = _read_csv_table(path, wanted) if is_csv else _read_parquet_table(path)
    present = table.column_names
    missing = [name for name in REQUIRED_COLUMNS if name not in present]
    if missing:
        if is_csv:
            present = _read_csv_header(path)
        raise _missing_columns_error(path, missing, present)
    if table.num_rows == 0:
        raise DataValidationError(f"{path}: the file has a header but no data rows")

    # The two id columns hash millions of strings: in parallel (pyarrow releases the GIL).
    with ThreadPoolExecutor(max_workers=2) as pool:
        msno, song_id = pool.map(
            lambda name: _encode_ids(path, table, name, is_csv), ("msno", "song_id")
        )
    target = _validate_target(path, table, is_csv)
    if for_training:
        return pa.table({"msno": msno, "song_id": song_id, "target": target})
    columns: dict[str, pa.ChunkedArray | pa.Array] = {
        "msno": _as_string(table.column("msno")),
        "song_id": _as_string(table.column("song_id")),
    }
    for name in CATEGORICAL_COLUMNS:
        if name in present:
            values = _as_string(table.column(name))
            values = pc.if_else(pc.equal(values, ""), None, values)
            columns[name] = pc.fill_null(values, UNKNOWN)
        else:
            columns[name] = pa.chunked_array([pa.array([UNKNOWN] * table.num_rows)])
    columns["target"] = target
    return pa.table(columns)


def _load_side_table(path: str | Path, key: str, columns: tuple[str, ...]) -> pd.DataFrame:
    path = Path(path)
    _check_readable_file(path)
    if _is_parquet(path):
        table = _read_parquet_table(path)
    else:
        header = _read_csv_header(path)
        wanted = tuple(name for name in columns if name in header)
        table = _read_csv_table(path, wanted)
    if key not in table.column_names:
        raise _missing_columns_error(path, [key], table.column_names)
    frame = table.select([name for name in columns if name in table.column_names]).to_pandas()
    return frame.drop_duplicates(subset=key, keep="first").reset_index(drop=True)


def load_songs(path: str | Path) -> pd.DataFrame:
    """Song metadata (`songs.csv`), for display and EDA; only `song_id` is required."""
    return _load_side_table(path, "song_id", SONG_COLUMNS)


def load_members(path: str | Path) -> pd.DataFrame:
    """Listener metadata (`members.csv`), for EDA; only `msno` is required."""
    return _load_side_table(path, "msno", MEMBER_COLUMNS)
