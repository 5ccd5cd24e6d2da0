"""`query` is read-only in fact: each statement an attacker or a careless analyst tried is
refused, and the warehouse, the file system and the network are untouched."""

from __future__ import annotations

import hashlib
import json
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


def _cli(*arguments, **kwargs):
    from typer.testing import CliRunner

    from ser_pipeline.cli import app

    return CliRunner().invoke(app, ["query", *arguments], **kwargs)


def test_piped_output_is_csv_at_full_precision_and_json_keeps_types(warehouse):
    sql = "SELECT 3456.789::DOUBLE AS start_s, NULL AS speaker, DATE '2026-01-02' AS day, 'a,b' AS text"
    piped = _cli(sql, "--warehouse", str(warehouse))  # not a terminal: CSV
    assert piped.exit_code == 0 and piped.stdout == 'start_s,speaker,day,text\n3456.789,,2026-01-02,"a,b"\n'
    as_json = _cli(sql + "; SELECT 1 AS one", "--warehouse", str(warehouse), "--format", "json")
    assert json.loads(as_json.stdout) == [
        [{"start_s": 3456.789, "speaker": None, "day": "2026-01-02", "text": "a,b"}],
        [{"one": 1}],
    ]
    table = _cli(sql, "--warehouse", str(warehouse), "--format", "table")
    assert "3456.789" in table.stdout and "start_s" in table.stdout


def test_sql_comes_from_a_file_or_standard_input_and_the_warehouse_from_the_environment(warehouse, tmp_path):
    queries = tmp_path / "q.sql"
    queries.write_text(
        '-- segments per show\nSELECT "show", count(*) AS n FROM segments GROUP BY 1;\n\n-- and\nSELECT 2 AS two;\n'
    )
    from_file = _cli("--file", str(queries), "--warehouse", str(warehouse))
    assert from_file.exit_code == 0 and from_file.stdout == "show,n\nShow A,4\n\ntwo\n2\n"
    from_stdin = _cli("-", input="SELECT count(*) AS n FROM episodes", env={"SER_WAREHOUSE": str(warehouse)})
    assert from_stdin.exit_code == 0 and from_stdin.stdout == "n\n1\n"
    both = _cli("SELECT 1", "--file", str(queries), "--warehouse", str(warehouse))
    assert both.exit_code == 2 and "not both" in both.output


def test_results_go_to_a_file_in_the_format_of_its_extension(warehouse, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "segments.parquet"
    written = _cli(
        "SELECT start_s, valence FROM segments ORDER BY start_s", "--warehouse", str(warehouse), "-o", str(out)
    )
    assert written.exit_code == 0 and written.stdout == ""
    table = pq.read_table(out)
    assert table.column_names == ["start_s", "valence"] and table.num_rows == 4
    assert str(table.schema.field("start_s").type) == "double"
    refused = _cli("SELECT 1; SELECT 2", "--warehouse", str(warehouse), "-o", str(tmp_path / "two.parquet"))
    assert refused.exit_code == 2 and "one result" in refused.output and not (tmp_path / "two.parquet").exists()
    as_csv = _cli("SELECT 1 AS one", "--warehouse", str(warehouse), "-o", str(tmp_path / "one.csv"))
    assert as_csv.exit_code == 0 and (tmp_path / "one.csv").read_text() == "one\n1\n"
    unpiped = _cli("SELECT 1", "--warehouse", str(warehouse), "--format", "parquet")
    assert unpiped.exit_code == 2 and "--output" in unpiped.output
