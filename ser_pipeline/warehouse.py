"""The warehouse: one Parquet file per episode per table, hive-partitioned by show, and a
DuckDB file of views over them.

Layout: `<warehouse>/<table>/show=<quoted show>/<episode key>.parquet`. A file is written to
a temporary name beside its target and renamed over it, so readers see the old file or the
new one, never half of one; re-running an episode replaces its files, so rows are never
duplicated.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import time
from pathlib import Path
from urllib.parse import quote

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ser_pipeline.files import PROJECT_ROOT
from ser_pipeline.schema import TABLES

DATABASE_NAME = "podcasts.duckdb"
VIEWS_SQL = PROJECT_ROOT / "warehouse" / "views.sql"

_DUCKDB_TYPES = {
    pa.string(): "VARCHAR",
    pa.float64(): "DOUBLE",
    pa.float32(): "FLOAT",
    pa.int32(): "INTEGER",
    pa.timestamp("s", tz="UTC"): "TIMESTAMPTZ",
    pa.timestamp("ms", tz="UTC"): "TIMESTAMPTZ",
}


def episode_key(episode_id: str) -> str:
    """A file name for an episode id (GUIDs may be URLs): readable slug + hash of the exact id."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", episode_id).strip("-.")[:60] or "episode"
    return f"{slug}-{hashlib.sha256(episode_id.encode()).hexdigest()[:10]}"


def partition_dir(warehouse: Path, table: str, show: str) -> Path:
    return warehouse / table / f"show={quote(show, safe='')}"


def table_file(warehouse: Path, table: str, show: str, episode_id: str) -> Path:
    return partition_dir(warehouse, table, show) / f"{episode_key(episode_id)}.parquet"


def _write_atomically(table: pa.Table, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_episode(warehouse: Path, show: str, episode_id: str, tables: dict[str, pa.Table]) -> None:
    """Replace this episode's rows in every table. The `episodes` row goes last: it marks the
    episode's other files as complete."""
    for name in sorted(tables, key=lambda n: n == "episodes"):
        table = tables[name]
        if table.schema != TABLES[name]:
            raise ValueError(f"table {name} does not match the schema in ser_pipeline.schema")
        _write_atomically(table, table_file(warehouse, name, show, episode_id))


def _empty_select(schema: pa.Schema) -> str:
    columns = ", ".join(f"CAST(NULL AS {_DUCKDB_TYPES[f.type]}) AS {f.name}" for f in schema)
    return f"SELECT {columns} WHERE false"


def _table_source(warehouse: Path, name: str) -> str:
    folder = (warehouse / name).resolve()
    if not any(folder.glob("*/*.parquet")):
        return _empty_select(TABLES[name])
    glob = str(folder / "*" / "*.parquet").replace("'", "''")
    # The show is a column inside every file; reading the partition folder too would duplicate it.
    return f"SELECT * FROM read_parquet('{glob}', hive_partitioning = false, union_by_name = true)"


def database_path(warehouse: Path) -> Path:
    return warehouse / DATABASE_NAME


_LOCK_ATTEMPTS, _LOCK_WAIT_S = 60, 0.5


def reports_dir(warehouse: Path, reports: str | Path | None = None) -> Path:
    """The report folder: the one given, else `reports/` beside the warehouse."""
    return Path(reports) if reports else warehouse.parent / "reports"


def outputs_exist(warehouse: Path, reports: Path) -> bool:
    """Whether the views and the report index are there (a run with nothing new keeps them)."""
    return database_path(warehouse).exists() and (reports / "index.html").exists()


def refresh_views(warehouse: Path, attempts: int = _LOCK_ATTEMPTS) -> Path:
    """(Re)create the DuckDB views over the Parquet files. Runs that finish at once take turns
    (a lock file); a reader holding the database is waited for. The database holds nothing but
    views, so one left unreadable (a run killed while writing it) is rebuilt."""
    warehouse.mkdir(parents=True, exist_ok=True)
    statements = [f"CREATE OR REPLACE VIEW {name} AS {_table_source(warehouse, name)}" for name in TABLES]
    statements += [s for s in VIEWS_SQL.read_text().split(";") if s.strip()]
    database = database_path(warehouse)
    with (warehouse / ".views.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for attempt in range(attempts):
            try:
                with duckdb.connect(str(database)) as connection:
                    for statement in statements:
                        connection.execute(statement)
                return database
            except duckdb.IOException as error:
                if _is_lock_error(error) and attempt < attempts - 1:
                    time.sleep(_LOCK_WAIT_S)
                    continue
                if _is_lock_error(error):
                    raise
                _remove_database(database)
            except duckdb.Error:
                _remove_database(database)
    raise duckdb.IOException(f"could not write {database} after {attempts} attempts")


def _remove_database(database: Path) -> None:
    for path in (database, database.with_name(database.name + ".wal")):
        path.unlink(missing_ok=True)


def connect_read_only(warehouse: Path) -> duckdb.DuckDBPyConnection:
    path = database_path(warehouse)
    if not path.is_file():
        raise FileNotFoundError(
            f"no warehouse database at {path}: run `ser-pipeline run ARCHIVE --warehouse {warehouse}` first"
        )
    for attempt in range(_LOCK_ATTEMPTS):  # a run refreshing the views holds the file briefly
        try:
            return duckdb.connect(str(path), read_only=True)
        except duckdb.IOException as error:
            if not _is_lock_error(error) or attempt == _LOCK_ATTEMPTS - 1:
                raise
            time.sleep(_LOCK_WAIT_S)
    raise AssertionError("unreachable")


def _is_lock_error(error: duckdb.Error) -> bool:
    return "lock" in str(error).lower()
