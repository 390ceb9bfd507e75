"""The KKBox listening-log schema: which columns exist, which are required, how gaps are kept."""

from __future__ import annotations

REQUIRED_COLUMNS: tuple[str, ...] = ("msno", "song_id", "target")
CATEGORICAL_COLUMNS: tuple[str, ...] = ("source_system_tab", "source_screen_name", "source_type")
INTERACTION_COLUMNS: tuple[str, ...] = ("msno", "song_id", *CATEGORICAL_COLUMNS, "target")
# A missing categorical value is information (the app did not report a source), so it stays a
# category of its own instead of dropping the row.
UNKNOWN = "unknown"
TARGET_VALUES = ("0", "1")

SONG_COLUMNS: tuple[str, ...] = (
    "song_id",
    "song_length",
    "genre_ids",
    "artist_name",
    "composer",
    "lyricist",
    "language",
)
MEMBER_COLUMNS: tuple[str, ...] = (
    "msno",
    "city",
    "bd",
    "gender",
    "registered_via",
    "registration_init_time",
    "expiration_date",
)


def row_label(row_index: int, *, csv: bool) -> str:
    """How a 0-based data row is named in messages: 1-based row, plus its line in a CSV file."""
    if csv:
        return f"row {row_index + 1} (line {row_index + 2})"
    return f"row {row_index + 1}"
