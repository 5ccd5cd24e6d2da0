from __future__ import annotations

import pyarrow as pa
import pytest

from conftest import episode_tables
from ser_pipeline import schema
from ser_pipeline.evaluation import evaluate_warehouse
from ser_pipeline.warehouse import refresh_views, write_episode

TRUTH = """start,end,kind,label,intensity,speaker,source
0.0,3.0,speech,happy,normal,A,x.flac
3.0,6.0,speech,sad,normal,A,x.flac
6.0,9.0,speech,angry,normal,B,x.flac
10.0,12.0,laughter,laughter,,,y.flac
20.0,22.0,laughter,laughter,,,y.flac
"""


def test_scores_against_truth_are_what_the_rows_say(tmp_path):
    tables = episode_tables("show", "ep1", 12)
    segments = tables["segments"].to_pylist()
    for row, label in zip(segments, ["happy", "happy", "angry"] + ["neutral"] * 9):
        row.update(kind="sentence", emotion=label, sentiment=schema.EMOTION_TO_SENTIMENT[label])
    tables["segments"] = pa.Table.from_pylist(segments, schema=schema.SEGMENTS)
    events = [
        {"show": "show", "episode_id": "ep1", "start_s": 10.2, "end_s": 12.0, "duration_s": 1.8, "peak_prob": 0.9, "mean_prob": 0.8, "model": "m"},
        {"show": "show", "episode_id": "ep1", "start_s": 30.0, "end_s": 31.0, "duration_s": 1.0, "peak_prob": 0.9, "mean_prob": 0.8, "model": "m"},
    ]  # fmt: skip
    tables["laughter_events"] = pa.Table.from_pylist(events, schema=schema.LAUGHTER_EVENTS)
    write_episode(tmp_path / "wh", "show", "ep1", tables)
    refresh_views(tmp_path / "wh")
    (tmp_path / "truth").mkdir()
    (tmp_path / "truth" / "ep1.truth.csv").write_text(TRUTH)
    scores = evaluate_warehouse(tmp_path / "wh", tmp_path / "truth")
    assert scores["sentences_matched"] == 3
    assert scores["emotion_accuracy"] == pytest.approx(2 / 3)  # happy, (sad -> happy), angry
    assert scores["sentiment_accuracy"] == pytest.approx(2 / 3)
    assert scores["laughter_event_precision"] == 0.5 and scores["laughter_event_recall"] == 0.5
    assert scores["laughter_frame_f1"] == pytest.approx(2 * 180 / (2 * 180 + 100 + 220), abs=0.01)
    assert scores["per_episode"]["show/ep1"] == {"laughs_per_10min_truth": 33.33, "laughs_per_10min_detected": 33.33}
