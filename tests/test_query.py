"""`query` is read-only in fact: each statement an attacker or a careless analyst tried is
refused, and the warehouse, the file system and the network are untouched."""

from __future__ import annotations

import hashlib
import os

import pytest

from conftest import episode_tables
from ser_pipeline.query import QueryRefused, run_query
from ser_pipeline.warehouse import refresh_views, table_file, write_episode


@pytest.fixture()
def warehouse(tmp_path):
    folder = tmp_path / "it's data"  # a quote in the path, too
    write_episode(folder, "Show A", "ep1", episode_tables("Show A", "ep1", 4))
    refresh_views(folder)
    return folder


def fingerprint(folder):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_selects_run_in_order_with_comments_and_ctes(warehouse):
    sql = "-- how many\nSELECT count(*) AS n FROM segments;\nWITH s AS (FROM segments) SELECT max(end_s) FROM s; DESCRIBE episodes"
    counted, longest, described = run_query(warehouse, sql)
    assert counted.columns == ["n"] and counted.rows == [(4,)]
    assert longest.rows == [(12.0,)] and described.rows[0][0] == "show"


@pytest.mark.parametrize(
    "statement",
    [
        "COPY (SELECT 1 AS a) TO '{segments}' (FORMAT parquet)",
        "ATTACH '{outside}/new.duckdb' (READ_WRITE)",
        "EXPORT DATABASE '{outside}/export'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "CREATE TABLE t AS SELECT 1",
        "DROP VIEW segments",
        "SELECT 1; COPY (SELECT 1) TO '{outside}/x.csv'",
    ],
)
def test_statements_other_than_select_are_refused_before_any_runs(statement, warehouse, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    before = fingerprint(warehouse)
    segments = table_file(warehouse, "segments", "Show A", "ep1")
    with pytest.raises(QueryRefused, match="only SELECT"):
        run_query(warehouse, statement.format(segments=str(segments).replace("'", "''"), outside=outside))
    assert fingerprint(warehouse) == before and not any(outside.iterdir())


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM read_text('{outside}/secret.txt')",
        "SELECT * FROM '{outside}/secret.csv'",
        "SELECT * FROM read_parquet('{outside}/../**/*.parquet')",
        "SELECT * FROM read_csv('http://127.0.0.1:9/x.csv')",
    ],
)
def test_selects_read_nothing_outside_the_warehouse(statement, warehouse, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (outside / "secret.csv").write_text("a\nsecret\n")
    with pytest.raises(Exception, match="disabled by configuration"):
        run_query(warehouse, statement.format(outside=outside))


def test_a_relative_warehouse_path_from_another_directory_works(warehouse, monkeypatch):
    monkeypatch.chdir(warehouse.parent)
    (result,) = run_query(type(warehouse)(os.path.relpath(warehouse)), "SELECT count(*) FROM segments")
    assert result.rows == [(4,)]
