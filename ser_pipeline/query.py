"""User SQL on the warehouse, read-only in fact: only SELECT statements run, on a read-only
connection that can read nothing but the warehouse's own table folders (no other files, no
network, no extension installs or loads) and whose configuration is locked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from ser_pipeline.schema import TABLES
from ser_pipeline.warehouse import connect_read_only

# SELECT covers WITH ..., FROM ..., DESCRIBE, SHOW, SUMMARIZE and PIVOT.
_ALLOWED = {duckdb.StatementType.SELECT}


class QueryRefused(ValueError):
    """A statement `query` does not run: the message names it and says why."""


@dataclass(frozen=True)
class QueryResult:
    """One statement's result, its column types and values as DuckDB gave them."""

    table: pa.Table

    @property
    def columns(self) -> list[str]:
        return self.table.column_names

    @property
    def rows(self) -> list[tuple]:
        return list(zip(*(column.to_pylist() for column in self.table.columns), strict=True))


def check_statements(sql: str) -> list[str]:
    """The statements of `sql` as text, each a SELECT; anything else is refused."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise QueryRefused(str(error).splitlines()[0]) from None
    if not statements:
        raise QueryRefused("no SQL statement given")
    for statement in statements:
        if statement.type not in _ALLOWED:
            kind = statement.type.name
            raise QueryRefused(f"only SELECT statements run in `query` (the warehouse is read-only); got {kind}")
    return [statement.query for statement in statements]


def connect_locked(warehouse: Path, wait_s: float | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the warehouse that can read its table folders and nothing else."""
    warehouse = warehouse.resolve()  # the views then read the very paths allowed here
    connection = connect_read_only(warehouse, wait_s)
    folders = [str(warehouse / table) + "/" for table in TABLES]
    listed = ", ".join("'" + folder.replace("'", "''") + "'" for folder in folders)
    for setting in (
        f"SET allowed_directories = [{listed}]",
        "SET enable_external_access = false",
        "SET autoinstall_known_extensions = false",
        "SET autoload_known_extensions = false",
        "SET lock_configuration = true",
    ):
        connection.execute(setting)
    return connection


def run_query(warehouse: Path, sql: str, wait_s: float | None = None) -> list[QueryResult]:
    """Each statement's columns and rows, in order."""
    statements = check_statements(sql)
    with connect_locked(warehouse, wait_s) as connection:
        results = []
        for statement in statements:
            relation = connection.sql(statement)
            results.append(QueryResult(relation.to_arrow_table() if relation is not None else pa.table({})))
        return results
