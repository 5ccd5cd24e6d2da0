from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from conftest import SHARED_DATA, episode_tables, needs_shared
from ser_pipeline import schema
from ser_pipeline.evaluation import clip_versus_sentence, evaluate_warehouse
from ser_pipeline.metrics import accuracy, uar_difference_interval, unweighted_average_recall
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


LEXICON = """word,valence,arousal,dominance
happy,1.0,0.7,0.8
sad,0.2,0.3,0.1
angry,0.1,0.8,0.6
calm,0.9,0.1,0.3
neutral,0.5,0.2,0.4
"""


def test_dims_are_scored_against_the_true_classes_lexicon_coordinates(tmp_path):
    calm = "6.0,9.0,speech,neutral,strong,B,ravdess/Actor_01/03-01-02-02-01-01-01.flac"
    truth = TRUTH.replace("6.0,9.0,speech,angry,normal,B,x.flac", calm)
    coordinates = [(1.0, 0.7, 0.8), (0.2, 0.3, 0.1), (0.9, 0.1, 0.3)]  # happy, sad, calm (RAVDESS code 02)
    tables = episode_tables("show", "ep1", 12)
    segments = tables["segments"].to_pylist()
    for index, row in enumerate(segments):
        valence, _, dominance = coordinates[min(index, 2)]
        row.update(kind="sentence", valence=valence, arousal=0.5, dominance=1 - dominance)
    tables["segments"] = pa.Table.from_pylist(segments, schema=schema.SEGMENTS)
    write_episode(tmp_path / "wh", "show", "ep1", tables)
    refresh_views(tmp_path / "wh")
    (tmp_path / "truth").mkdir()
    (tmp_path / "truth" / "ep1.truth.csv").write_text(truth)
    (tmp_path / "lexicon.csv").write_text(LEXICON)
    scores = evaluate_warehouse(tmp_path / "wh", tmp_path / "truth", tmp_path / "lexicon.csv")
    assert scores["valence_ccc_lexicon"] == pytest.approx(1.0)  # calm's coordinates, not neutral's
    assert scores["arousal_ccc_lexicon"] == pytest.approx(0.0)  # a constant says nothing
    assert scores["dominance_ccc_lexicon"] < -0.5  # upside down
    assert "valence_ccc_lexicon" not in evaluate_warehouse(tmp_path / "wh", tmp_path / "truth")


def test_the_gap_between_two_readings_of_the_same_items_comes_with_a_paired_bootstrap_interval():
    rng = np.random.default_rng(0)
    truth = list(rng.choice(schema.EMOTIONS, 235))
    good = [t if rng.random() < 0.8 else rng.choice(schema.EMOTIONS) for t in truth]
    worse = [g if rng.random() < 0.8 else rng.choice(schema.EMOTIONS) for g in good]  # good, partly spoilt
    gap = unweighted_average_recall(truth, good, schema.EMOTIONS) - unweighted_average_recall(
        truth, worse, schema.EMOTIONS
    )
    low, high = uar_difference_interval(truth, good, worse, schema.EMOTIONS)
    assert 0 < low < gap < high < 2 * gap, (low, gap, high)  # spoilt items are mostly wrong: the interval excludes 0
    assert uar_difference_interval(truth, worse, good, schema.EMOTIONS) == pytest.approx((-high, -low))
    assert uar_difference_interval(truth, good, good, schema.EMOTIONS) == (0.0, 0.0)
    rare = ["fear" if i == 0 else "neutral" if t == "fear" else t for i, t in enumerate(truth)]  # one fear
    assert all(np.isfinite(uar_difference_interval(rare, good, worse, schema.EMOTIONS)))  # resamples miss it


@needs_shared
def test_clean_clips_and_their_sentences_are_compared_on_the_clips_both_have(tmp_path, analyzer):
    codes = {"happy": "03", "sad": "04", "angry": "05", "fear": "06", "disgust": "07", "neutral": "01"}
    truth = ["start,end,kind,label,intensity,speaker,source"] + [
        f"{3 * i}.0,{3 * i + 3}.0,speech,{label},normal,A,ravdess/Actor_01/03-01-{code}-01-01-01-01.flac"
        for i, (label, code) in enumerate(codes.items())
    ]
    truth.append("18.0,21.0,speech,sad,normal,A,ravdess/Actor_01/missing.flac")  # no source: left out
    tables = episode_tables("show", "ep1", 8)
    segments = tables["segments"].to_pylist()
    for row, label in zip(segments, [*codes, "sad"]):  # every sentence read right
        row.update(kind="sentence", emotion=label)
    tables["segments"] = pa.Table.from_pylist(segments, schema=schema.SEGMENTS)
    write_episode(tmp_path / "wh", "show", "ep1", tables)
    refresh_views(tmp_path / "wh")
    (tmp_path / "truth").mkdir()
    (tmp_path / "truth" / "ep1.truth.csv").write_text("\n".join(truth) + "\n")
    scores = clip_versus_sentence(tmp_path / "wh", tmp_path / "truth", SHARED_DATA, analyzer)
    assert scores["clips"] == len(codes)
    assert scores["sentence_emotion_uar"] == 1.0
    gap = scores["together_minus_sentence_emotion_uar"]
    assert gap == pytest.approx(scores["clips_of_a_speaker_together_emotion_uar"] - 1.0)
    low, high = scores["together_minus_sentence_ci95"]
    assert low <= gap <= high <= 0
    clip_labels = [
        analyzer.analyze_file(SHARED_DATA / line.split(",")[-1]).columns["emotion"][0] for line in truth[1:-1]
    ]
    assert scores["clip_sentence_agreement"] == pytest.approx(accuracy(list(codes), clip_labels))
    assert all(np.isfinite(scores[f"together_{d}_mean_abs_diff"]) for d in schema.DIMENSIONS)
