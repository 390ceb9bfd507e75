"""Datasets in the database: bulk import, append, and fast read-back to an Arrow table.

PostgreSQL imports with ``COPY … FROM STDIN`` fed by pyarrow's CSV writer and reads back with
``COPY … TO STDOUT`` parsed by pyarrow's CSV reader; SQLite uses batched ``executemany`` and
``fetchmany``. Neither path builds ORM objects per row. Rows keep their arrival order (``seq``),
so a dataset read back encodes exactly like its source file.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import Connection, Engine, func, insert, select, update

from musicrec.data.loading import load_interactions
from musicrec.data.schema import INTERACTION_COLUMNS
from musicrec.errors import ConflictError, InvalidParameterError, NotFoundError
from musicrec.store.db import is_sqlite
from musicrec.store.tables import as_utc, datasets, interactions

DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_BATCH_ROWS = 200_000
_ARROW_SCHEMA = pa.schema(
    [(name, pa.int8() if name == "target" else pa.string()) for name in INTERACTION_COLUMNS]
)
ProgressCallback = Callable[[int, int], None]


@dataclass
class DatasetInfo:
    id: int
    name: str
    source: str
    rows: int
    users: int
    songs: int
    fingerprint: str
    created_at: datetime
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "rows": self.rows,
            "users": self.users,
            "songs": self.songs,
            "fingerprint": self.fingerprint,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def check_dataset_name(name: str) -> str:
    if not DATASET_NAME.match(name or ""):
        raise InvalidParameterError(
            f"invalid dataset name {name!r}: use 1-200 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def _csv_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(table, sink, write_options=pacsv.WriteOptions(include_header=False))
    return sink.getvalue()


def _canonical_csv(table: pa.Table) -> bytes:
    return _csv_bytes(table.select(list(INTERACTION_COLUMNS)))


def _chain_fingerprint(previous: str, table: pa.Table) -> str:
    """sha256 chained over appended content: equal data in equal order, equal fingerprint."""
    digest = hashlib.sha256(previous.encode("ascii"))
    for start in range(0, table.num_rows, _BATCH_ROWS):
        digest.update(_canonical_csv(table.slice(start, _BATCH_ROWS)))
    return digest.hexdigest()


def _distinct(table: pa.Table, column: str) -> int:
    return int(pc.count_distinct(table.column(column)).as_py())


def _row(record: Any) -> DatasetInfo:
    fields = {key: getattr(record, key) for key in DatasetInfo.__dataclass_fields__}
    fields["created_at"] = as_utc(fields["created_at"])
    fields["updated_at"] = as_utc(fields["updated_at"])
    return DatasetInfo(**fields)


class DatasetStore:
    """Named listening-event datasets in the registry database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list_datasets(self) -> list[DatasetInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(datasets).order_by(datasets.c.created_at.desc())).all()
        return [_row(r) for r in rows]

    def get(self, name: str) -> DatasetInfo:
        with self.engine.connect() as conn:
            row = conn.execute(select(datasets).where(datasets.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"dataset {name!r} not found")
        return _row(row)

    def exists(self, name: str) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.execute(select(datasets.c.id).where(datasets.c.name == name)).first()
                is not None
            )

    def import_file(
        self, name: str, path: str | Path, progress: ProgressCallback | None = None
    ) -> DatasetInfo:
        """Validate a CSV/Parquet file with the project's loader and store it as ``name``."""
        table = load_interactions(path)
        return self.import_table(name, table, source=Path(path).name, progress=progress)

    def import_table(
        self, name: str, table: pa.Table, source: str, progress: ProgressCallback | None = None
    ) -> DatasetInfo:
        """Store a validated table as a new dataset, all or nothing (one transaction)."""
        check_dataset_name(name)
        table = table.select(list(INTERACTION_COLUMNS)).cast(_ARROW_SCHEMA)
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            if conn.execute(select(datasets.c.id).where(datasets.c.name == name)).first():
                raise ConflictError(f"dataset {name!r} already exists")
            dataset_id = conn.execute(
                insert(datasets)
                .values(
                    name=name,
                    source=source,
                    rows=table.num_rows,
                    users=_distinct(table, "msno"),
                    songs=_distinct(table, "song_id"),
                    fingerprint=_chain_fingerprint("", table),
                    created_at=now,
                    updated_at=now,
                )
                .returning(datasets.c.id)
            ).scalar_one()
            self._bulk_insert(conn, dataset_id, table, first_seq=0, progress=progress)
        return self.get(name)

    def append(self, name: str, table: pa.Table) -> DatasetInfo:
        """Append validated events (e.g. the player's log) to an existing dataset."""
        table = table.select(list(INTERACTION_COLUMNS)).cast(_ARROW_SCHEMA)
        with self.engine.begin() as conn:
            query = select(datasets).where(datasets.c.name == name)
            if not is_sqlite(self.engine):
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None:
                raise NotFoundError(f"dataset {name!r} not found")
            next_seq = conn.execute(
                select(func.coalesce(func.max(interactions.c.seq) + 1, 0)).where(
                    interactions.c.dataset_id == row.id
                )
            ).scalar_one()
            self._bulk_insert(conn, row.id, table, first_seq=int(next_seq))
            counts = conn.execute(
                select(
                    func.count(),
                    func.count(func.distinct(interactions.c.msno)),
                    func.count(func.distinct(interactions.c.song_id)),
                ).where(interactions.c.dataset_id == row.id)
            ).one()
            conn.execute(
                update(datasets)
                .where(datasets.c.id == row.id)
                .values(
                    rows=counts[0],
                    users=counts[1],
                    songs=counts[2],
                    fingerprint=_chain_fingerprint(row.fingerprint, table),
                    updated_at=datetime.now(UTC),
                )
            )
        return self.get(name)

    def delete(self, name: str) -> None:
        with self.engine.begin() as conn:
            row = conn.execute(select(datasets.c.id).where(datasets.c.name == name)).first()
            if row is None:
                raise NotFoundError(f"dataset {name!r} not found")
            conn.execute(interactions.delete().where(interactions.c.dataset_id == row.id))
            conn.execute(datasets.delete().where(datasets.c.id == row.id))

    def read_table(self, name: str) -> pa.Table:
        """Every event of the dataset in arrival order, as the loader's Arrow schema."""
        info = self.get(name)
        with self.engine.connect() as conn:
            if is_sqlite(self.engine):
                return _read_sqlite(conn, info.id)
            return _read_postgres(conn, info.id)

    def _bulk_insert(
        self,
        conn: Connection,
        dataset_id: int,
        table: pa.Table,
        first_seq: int,
        progress: ProgressCallback | None = None,
    ) -> None:
        total = table.num_rows
        for start in range(0, total, _BATCH_ROWS):
            batch = table.slice(start, _BATCH_ROWS)
            if is_sqlite(self.engine):
                _insert_sqlite(conn, dataset_id, batch, first_seq + start)
            else:
                _copy_postgres(conn, dataset_id, batch, first_seq + start)
            if progress:
                progress(min(total, start + _BATCH_ROWS), total)


_COLUMN_LIST = "dataset_id, seq, " + ", ".join(INTERACTION_COLUMNS)


def _with_keys(dataset_id: int, batch: pa.Table, first_seq: int) -> pa.Table:
    n = batch.num_rows
    keyed = batch.add_column(0, "seq", pa.array(range(first_seq, first_seq + n), pa.int64()))
    return keyed.add_column(0, "dataset_id", pa.array([dataset_id] * n, pa.int32()))


def _insert_sqlite(conn: Connection, dataset_id: int, batch: pa.Table, first_seq: int) -> None:
    keyed = _with_keys(dataset_id, batch, first_seq)
    rows = list(zip(*(keyed.column(i).to_pylist() for i in range(keyed.num_columns)), strict=True))
    placeholders = ", ".join("?" * keyed.num_columns)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.executemany(f"INSERT INTO interactions ({_COLUMN_LIST}) VALUES ({placeholders})", rows)


def _copy_postgres(conn: Connection, dataset_id: int, batch: pa.Table, first_seq: int) -> None:
    payload = _csv_bytes(_with_keys(dataset_id, batch, first_seq))
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY interactions ({_COLUMN_LIST}) FROM STDIN WITH (FORMAT csv)") as copy:
        copy.write(payload)


_SELECT_EVENTS = (
    "SELECT " + ", ".join(INTERACTION_COLUMNS) + " FROM interactions WHERE dataset_id = {id} "
    "ORDER BY seq"
)


def _read_sqlite(conn: Connection, dataset_id: int) -> pa.Table:
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(_SELECT_EVENTS.format(id=int(dataset_id)))
    chunks: list[pa.Table] = []
    while rows := cursor.fetchmany(_BATCH_ROWS):
        columns = list(zip(*rows, strict=True))
        chunks.append(
            pa.table(
                [
                    pa.array(col, type=field.type)
                    for col, field in zip(columns, _ARROW_SCHEMA, strict=True)
                ],
                schema=_ARROW_SCHEMA,
            )
        )
    if not chunks:
        return _ARROW_SCHEMA.empty_table()
    return pa.concat_tables(chunks)


def _read_postgres(conn: Connection, dataset_id: int) -> pa.Table:
    buffer = io.BytesIO()
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    statement = f"COPY ({_SELECT_EVENTS.format(id=int(dataset_id))}) TO STDOUT WITH (FORMAT csv)"
    with cursor.copy(statement) as copy:
        for block in copy:
            buffer.write(block)
    if buffer.tell() == 0:
        return _ARROW_SCHEMA.empty_table()
    buffer.seek(0)
    table = pacsv.read_csv(
        buffer,
        read_options=pacsv.ReadOptions(column_names=list(INTERACTION_COLUMNS), block_size=16 << 20),
        convert_options=pacsv.ConvertOptions(
            column_types={field.name: field.type for field in _ARROW_SCHEMA},
            strings_can_be_null=False,
        ),
    )
    return table.cast(_ARROW_SCHEMA)
