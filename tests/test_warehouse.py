from __future__ import annotations

import duckdb
import pytest

from conftest import episode_tables
from ser_pipeline import schema
from ser_pipeline.warehouse import connect_read_only, episode_key, refresh_views, table_file, write_episode


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


def test_files_are_hive_partitioned_by_show_with_safe_names(tmp_path):
    path = table_file(tmp_path, "segments", "Show/B é", "https://x.org/ep?id=1")
    assert path.parent.name == "show=Show%2FB%20%C3%A9" and path.parent.parent == tmp_path / "segments"
    assert episode_key("a/b") != episode_key("a?b") and "/" not in episode_key("a/b")


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
    with connect_read_only(tmp_path) as db:
        for query in examples + guide:
            assert db.execute(query).fetchall() is not None, query
