from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import duckdb
import pandas as pd
import pytest

from conftest import episode_tables
from ser_pipeline import schema
from ser_pipeline.query import run_query
from ser_pipeline.warehouse import (
    WarehouseBusy,
    connect_read_only,
    database_path,
    episode_key,
    mark_outputs_fresh,
    outputs_exist,
    refresh_views,
    table_file,
    tidy,
    write_episode,
)


def counts(warehouse):
    with connect_read_only(warehouse) as db:
        return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in schema.TABLES}


def test_views_exist_and_are_typed_before_any_episode(tmp_path):
    refresh_views(tmp_path)
    assert counts(tmp_path) == {"episodes": 0, "segments": 0, "laughter_events": 0}
    with connect_read_only(tmp_path) as db:
        assert [c[0] for c in db.sql("DESCRIBE segments").fetchall()] == schema.SEGMENTS.names


def test_rewriting_an_episode_replaces_its_rows(tmp_path):
    write_episode(tmp_path, "Show A", "ep1", episode_tables("Show A", "ep1", 5))
    write_episode(tmp_path, "Show/B é", "https://x.org/ep?id=1", episode_tables("Show/B é", "https://x.org/ep?id=1", 2))
    refresh_views(tmp_path)
    assert counts(tmp_path) == {"episodes": 2, "segments": 7, "laughter_events": 0}
    write_episode(tmp_path, "Show A", "ep1", episode_tables("Show A", "ep1", 3))
    refresh_views(tmp_path)
    assert counts(tmp_path) == {"episodes": 2, "segments": 5, "laughter_events": 0}
    assert not list(tmp_path.rglob("*.tmp"))
    with connect_read_only(tmp_path) as db:
        assert db.execute("SELECT laughs_per_10min FROM episode_laughter WHERE episode_id = 'ep1'").fetchone()[0] == 0


def test_files_are_grouped_by_show_with_safe_bounded_names(tmp_path):
    path = table_file(tmp_path, "segments", "Show/B é", "https://x.org/ep?id=1")
    assert path.parent.name.startswith("Show-B-") and path.parent.parent == tmp_path / "segments"
    assert episode_key("a/b") != episode_key("a?b") and "/" not in episode_key("a/b")
    long_title = table_file(tmp_path, "segments", "ш" * 300, "e")
    assert len(long_title.parent.name) < 80 and long_title.parent.name.startswith("show-")


def test_a_moved_warehouse_reads_its_own_files_from_any_directory(tmp_path, monkeypatch):
    original = tmp_path / "original"
    write_episode(original, "Show A", "ep1", episode_tables("Show A", "ep1", 5))
    refresh_views(original)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    write_episode(original, "Show A", "ep2", episode_tables("Show A", "ep2", 4))  # only the original has it
    refresh_views(original)
    assert counts(copy)["segments"] == 5 and counts(original)["segments"] == 9
    moved = tmp_path / "moved"
    shutil.move(original, moved)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert counts(moved)["segments"] == 9
    with duckdb.connect(os.path.relpath(database_path(moved)), read_only=True) as db:  # as the duckdb CLI opens it
        assert db.execute("SELECT count(*) FROM segments").fetchone()[0] == 9


def test_pandas_reads_a_table_folder_with_the_same_columns_as_the_view(tmp_path):
    write_episode(tmp_path, "Show A", "ep1", episode_tables("Show A", "ep1", 2))
    write_episode(tmp_path, "Show B", "ep2", episode_tables("Show B", "ep2", 3))
    frame = pd.read_parquet(tmp_path / "segments")
    assert list(frame.columns) == schema.SEGMENTS.names and len(frame) == 5
    assert sorted(frame["show"].unique()) == ["Show A", "Show B"]


def test_tidy_moves_old_show_folders_and_removes_temporaries_of_stopped_writers(tmp_path):
    write_episode(tmp_path, "Show/B é", "ep1", episode_tables("Show/B é", "ep1", 2))
    current = table_file(tmp_path, "segments", "Show/B é", "ep1")
    old = tmp_path / "segments" / "show=Show%2FB%20%C3%A9"
    old.mkdir()
    current.rename(old / current.name)
    current.parent.rmdir()
    dead = _finished_pid()
    stale = old.parent / "x" / f".ep1.parquet.{dead}.tmp"
    stale.parent.mkdir()
    stale.write_bytes(b"half")
    live = old.parent / "x" / f".ep2.parquet.{os.getpid()}.tmp"
    live.write_bytes(b"being written")
    done = tidy(tmp_path)
    assert current.is_file() and not old.exists() and not stale.exists() and live.exists()
    assert len(done) == 2
    refresh_views(tmp_path)
    assert counts(tmp_path)["segments"] == 2


def _finished_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_an_unreadable_database_is_rebuilt_and_other_errors_surface(tmp_path):
    refresh_views(tmp_path)
    database_path(tmp_path).write_bytes(b"not a database" * 100)
    refresh_views(tmp_path)
    assert counts(tmp_path)["segments"] == 0
    broken = tmp_path / "broken"
    database_path(broken).mkdir(parents=True)  # cannot be removed as a file: not rebuilt in a loop
    with pytest.raises((duckdb.Error, OSError), match="podcasts.duckdb"):
        refresh_views(broken, wait_s=1)


def test_a_reader_holding_the_database_makes_a_refresh_wait_then_say_busy(tmp_path, monkeypatch):
    refresh_views(tmp_path)
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True);"
            " print('open', flush=True); time.sleep(30)",
            str(database_path(tmp_path)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "open"
        with pytest.raises(WarehouseBusy, match="held by another process"):
            refresh_views(tmp_path, wait_s=1)
        monkeypatch.setenv("SER_WAREHOUSE_WAIT_S", "0.5")
        began = time.monotonic()
        with pytest.raises(WarehouseBusy, match=r"waited [01] s"):
            refresh_views(tmp_path)
        assert time.monotonic() - began < 5
    finally:
        reader.kill()
        reader.wait()
    refresh_views(tmp_path, wait_s=5)


def test_written_episodes_mark_the_outputs_stale_until_rebuilt(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "index.html").write_text("x")
    refresh_views(tmp_path)
    mark_outputs_fresh(tmp_path)
    assert outputs_exist(tmp_path, reports)
    write_episode(tmp_path, "s", "e", episode_tables("s", "e", 1))
    assert not outputs_exist(tmp_path, reports)


def test_a_table_that_breaks_the_schema_is_refused(tmp_path):
    tables = episode_tables("s", "e", 1)
    tables["segments"] = tables["segments"].drop_columns(["valence"])
    with pytest.raises(ValueError, match="schema"):
        write_episode(tmp_path, "s", "e", tables)


def test_read_only_connection_refuses_writes(tmp_path):
    refresh_views(tmp_path)
    with connect_read_only(tmp_path) as db, pytest.raises(duckdb.Error):
        db.execute("CREATE TABLE x (a INT)")


def test_missing_warehouse_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="ser-pipeline run"):
        connect_read_only(tmp_path)


def test_schema_reference_in_docs_is_generated_from_the_schema_module():
    from pathlib import Path

    from ser_pipeline.schema import schema_markdown

    assert (Path(__file__).parents[1] / "docs" / "schema.md").read_text() == schema_markdown()


def test_every_documented_query_runs(tmp_path):
    import re
    from pathlib import Path

    root = Path(__file__).parents[1]
    write_episode(
        tmp_path,
        "Show A",
        "late-debate-ep01",
        episode_tables("Show A", "late-debate-ep01", 30, speakers=("A", "B"), laughs=2),
    )
    refresh_views(tmp_path)
    sql = (root / "warehouse" / "example_queries.sql").read_text()
    examples = [s for s in sql.split(";") if re.sub(r"--.*", "", s).strip()]
    guide = re.findall(r"```sql\n(.*?)```", (root / "docs" / "user-guide.md").read_text(), re.S)
    assert len(examples) >= 5 and len(guide) >= 5
    for query in examples + guide:  # through the locked connection `query` uses
        (result,) = run_query(tmp_path, query)
        assert result.columns, query
