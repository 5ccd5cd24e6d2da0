"""The report pages' words and numbers mean what the SQL recipes mean."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest

from conftest import episode_tables
from ser_pipeline.query import run_query
from ser_pipeline.report import _emotion_figures, models_line
from ser_pipeline.schema import EMOTIONS
from ser_pipeline.warehouse import refresh_views, write_episode

EXAMPLES = Path(__file__).resolve().parents[1] / "warehouse" / "example_queries.sql"


def test_the_models_line_is_written_for_people():
    record = '{"emotion": "ser-whisper-head-v1", "dims": "ser-whisper-head-v1", "laughter": "laughter-tcn-v7@balanced"}'
    assert models_line(record) == (
        "emotion ser-whisper-head-v1, dims ser-whisper-head-v1, laughter laughter-tcn-v7 (operating point balanced)"
    )
    assert models_line('{"emotion_branch": "ser-speaker-branch-v6"}') == "emotion branch ser-speaker-branch-v6"
    assert models_line('{"emotion_reading": "alone"}') == "emotion reading alone"  # --no-episode-reading
    assert models_line("not json") == "not json" and models_line(None) == ""


def test_each_laugh_is_listed_with_the_segment_heard_when_it_starts():
    import pandas as pd

    from ser_pipeline.report import _moments_section

    starts = [1.0, 5.0, 10.0, 10.0]
    segments = pd.DataFrame(
        {"start_s": starts, "end_s": [s + 3 for s in starts], "speaker": ["A", "B", "C", "D"],
         "text": ["one", "two", "three", "four"], "p_positive": 0.5, "p_negative": 0.2, "arousal": 0.5}
    )  # fmt: skip
    laughs = [0.2, 1.0, 7.5, 10.0, 42.0]  # before any segment, at a start, inside, at a shared start, after all
    events = pd.DataFrame({"start_s": laughs, "end_s": [t + 1 for t in laughs], "peak_prob": 0.9})
    page = _moments_section(segments, events)
    listed = [row.split("<td>")[4:6] for row in page.split("<tr class='moment'")[1:] if "<td>laughter" in row]
    speakers = [cells[0].removesuffix("</td>") for cells in listed]
    assert speakers == ["A", "A", "B", "D", "D"]


def test_emotion_shares_on_the_page_equal_the_example_querys(tmp_path):
    warehouse = tmp_path / "data"
    write_episode(warehouse, "Show A", "ep1", episode_tables("Show A", "ep1", 6))
    refresh_views(warehouse)
    statements = [s.query for s in duckdb.extract_statements(EXAMPLES.read_text())]
    (shares_sql,) = [s for s in statements if "sum(p_angry * (end_s - start_s))" in s]
    (result,) = run_query(warehouse, shares_sql)
    from_sql = dict(zip(result.columns, result.rows[0], strict=True))
    with duckdb.connect(str(warehouse / "podcasts.duckdb"), read_only=True) as db:
        segments = db.execute("SELECT * FROM segments").df()
    whole, _ = _emotion_figures(segments)
    on_page = dict(zip(whole.data[0].x, whole.data[0].y, strict=True))
    assert set(on_page) == set(EMOTIONS) and sum(on_page.values()) == pytest.approx(1.0, abs=1e-5)
    for emotion in EMOTIONS:
        assert from_sql[emotion] == pytest.approx(np.round(on_page[emotion], 3), abs=1e-9)
