"""The warehouse: one Parquet file per episode per table, hive-partitioned by show, and a
DuckDB file of views over them.

Layout: `<warehouse>/<table>/<show key>/<episode key>.parquet`, one folder per show. Keys are
bounded, readable names with a hash of the exact show or episode id (titles may be long, in any
script, or URLs); the show itself is a column inside every file, so the folder names carry no
data and `pandas.read_parquet('<warehouse>/segments')` reads the same columns as the views. A
file is written to a temporary name beside its target and renamed over it, so readers see the
old file or the new one, never half of one; re-running an episode replaces its files, so rows
are never duplicated.

The views find their files relative to the database file (through DuckDB's default temporary
directory, `<database>.tmp` beside it), so the folder can be copied or moved and opened from
anywhere, by the plain `duckdb` client too.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import unquote

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ser_pipeline.files import PROJECT_ROOT, atomic_write, exclusive_lock
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


def path_key(name: str, fallback: str) -> str:
    """A file or folder name for any show title or episode id (GUIDs may be URLs, titles any
    length in any script): an ASCII slug of at most 60 characters (`fallback` when nothing of
    it is left) + a hash of the exact name."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:60] or fallback
    return f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def episode_key(episode_id: str) -> str:
    return path_key(episode_id, "episode")


def partition_dir(warehouse: Path, table: str, show: str) -> Path:
    return warehouse / table / path_key(show, "show")


def table_file(warehouse: Path, table: str, show: str, episode_id: str) -> Path:
    return partition_dir(warehouse, table, show) / f"{episode_key(episode_id)}.parquet"


def _write_atomically(table: pa.Table, target: Path) -> None:
    with atomic_write(target) as temporary:
        pq.write_table(table, temporary)


def tidy(warehouse: Path) -> list[str]:
    """Put a warehouse in order before a run writes to it, and say what was done: files in the
    `show=<quoted show>` folders of earlier versions move to their show's folder, and temporary
    files left by writers that are no longer running (killed mid-write) are removed."""
    done = []
    for table in TABLES:
        for folder in sorted((warehouse / table).glob("show=*")):
            target = partition_dir(warehouse, table, unquote(folder.name.removeprefix("show=")))
            target.mkdir(parents=True, exist_ok=True)
            for file in folder.glob("*.parquet"):
                os.replace(file, target / file.name)
            shutil.rmtree(folder)
            done.append(f"moved {folder} to {target}")
        for temporary in (warehouse / table).glob("*/.*.tmp"):
            pid = temporary.name.rsplit(".", 2)[-2]
            if pid.isdigit() and not _running(int(pid)):
                temporary.unlink(missing_ok=True)
                done.append(f"removed {temporary}, left by a writer that was stopped")
    return done


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def write_episode(warehouse: Path, show: str, episode_id: str, tables: dict[str, pa.Table]) -> None:
    """Replace this episode's rows in every table. The `episodes` row goes last: it marks the
    episode's other files as complete. The views and reports are marked stale until rebuilt."""
    warehouse.mkdir(parents=True, exist_ok=True)
    (warehouse / _STALE_MARK).touch()
    for name in sorted(tables, key=lambda n: n == "episodes"):
        table = tables[name]
        if table.schema != TABLES[name]:
            raise ValueError(f"table {name} does not match the schema in ser_pipeline.schema")
        _write_atomically(table, table_file(warehouse, name, show, episode_id))


def _empty_select(schema: pa.Schema) -> str:
    columns = ", ".join(f"CAST(NULL AS {_DUCKDB_TYPES[f.type]}) AS {f.name}" for f in schema)
    return f"SELECT {columns} WHERE false"


# The folder of the database file, as DuckDB itself knows it: a persistent database's default
# temporary directory is `<database file>.tmp`, an absolute path. Kept in the database, so the
# views resolve wherever the folder is and whatever the reader's working directory.
_WAREHOUSE_DIR_MACRO = (
    "CREATE OR REPLACE MACRO warehouse_dir() AS "
    "coalesce(nullif(parse_dirpath(current_setting('temp_directory')), ''), '.')"
)


def _table_source(warehouse: Path, name: str) -> str:
    if not any((warehouse / name).glob("*/*.parquet")):
        return _empty_select(TABLES[name])
    return (
        f"SELECT * FROM read_parquet(warehouse_dir() || '/{name}/*/*.parquet', "
        "hive_partitioning = false, union_by_name = true)"
    )


def database_path(warehouse: Path) -> Path:
    return warehouse / DATABASE_NAME


_LOCK_WAIT_S = 0.5


def reports_dir(warehouse: Path, reports: str | Path | None = None) -> Path:
    """The report folder: the one given, else `reports/` beside the warehouse."""
    return Path(reports) if reports else warehouse.parent / "reports"


_STALE_MARK = ".outputs-stale"  # episodes were written since the views and reports were last built


def outputs_exist(warehouse: Path, reports: Path) -> bool:
    """Whether the views and the report index are there and were built after the last episode
    was written (a run with nothing new keeps them; one killed or refused the database before
    building them leaves them stale, and the next run builds them)."""
    return (
        database_path(warehouse).exists()
        and (reports / "index.html").exists()
        and not (warehouse / _STALE_MARK).exists()
    )


def mark_outputs_fresh(warehouse: Path) -> None:
    (warehouse / _STALE_MARK).unlink(missing_ok=True)


class WarehouseBusy(RuntimeError):
    """Another process holds the database longer than a run waits for it."""


def busy_wait_s() -> float:
    """How long a run or a reader waits for a database another process holds:
    `SER_WAREHOUSE_WAIT_S` seconds, default 30."""
    text = os.environ.get("SER_WAREHOUSE_WAIT_S", "30")
    try:
        return max(float(text), 0.0)
    except ValueError:
        raise ValueError(f"SER_WAREHOUSE_WAIT_S={text!r} is not a number of seconds") from None


def refresh_views(warehouse: Path, wait_s: float | None = None) -> Path:
    """(Re)create the DuckDB views over the Parquet files. Runs that finish at once take turns
    (a lock file); a reader holding the database is waited for up to `wait_s` seconds, then
    `WarehouseBusy` (default: `busy_wait_s()`). The database holds nothing but views, so one that cannot be opened (a run
    killed while writing it) is rebuilt; any other error is raised at once."""
    wait_s = busy_wait_s() if wait_s is None else wait_s
    warehouse.mkdir(parents=True, exist_ok=True)
    statements = [_WAREHOUSE_DIR_MACRO]
    statements += [f"CREATE OR REPLACE VIEW {name} AS {_table_source(warehouse, name)}" for name in TABLES]
    statements += [s for s in VIEWS_SQL.read_text().split(";") if s.strip()]
    database = database_path(warehouse)
    with exclusive_lock(warehouse / ".views.lock"):
        connection = _open_for_writing(database, wait_s)
        with connection:
            for statement in statements:
                connection.execute(statement)
    return database


def _open_for_writing(database: Path, wait_s: float) -> duckdb.DuckDBPyConnection:
    try:
        return _connect_waiting(database, wait_s, read_only=False)
    except duckdb.IOException:  # unreadable: nothing but views is lost by starting it anew
        _remove_database(database)
        return _connect_waiting(database, wait_s, read_only=False)


def _connect_waiting(path: Path, wait_s: float, read_only: bool) -> duckdb.DuckDBPyConnection:
    """A connection once no other process holds the database (lock errors only are waited for,
    up to `wait_s`, then `WarehouseBusy`); any other error is raised at once."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as error:
            if not _is_lock_error(error):
                raise
            if time.monotonic() >= deadline:
                raise WarehouseBusy(f"{path} is held by another process (waited {wait_s:.0f} s): {error}") from None
            time.sleep(_LOCK_WAIT_S)


def _remove_database(database: Path) -> None:
    for path in (database, database.with_name(database.name + ".wal")):
        path.unlink(missing_ok=True)


def connect_read_only(warehouse: Path, wait_s: float | None = None) -> duckdb.DuckDBPyConnection:
    """The warehouse database, read-only; a run refreshing the views holds it briefly and is
    waited for up to `wait_s` seconds, then `WarehouseBusy`."""
    wait_s = busy_wait_s() if wait_s is None else wait_s
    path = database_path(warehouse)
    if not path.is_file():
        raise FileNotFoundError(
            f"no warehouse database at {path}: run `ser-pipeline run ARCHIVE --warehouse {warehouse}` first"
        )
    return _connect_waiting(path, wait_s, read_only=True)


def _is_lock_error(error: duckdb.Error) -> bool:
    return "lock" in str(error).lower()
