"""The command line end to end: `ser-pipeline run` on Prefect's local ephemeral API, a real
DuckDB file, the reports, `predict`, `query` and `models`."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from conftest import EPISODES, SHARED_DATA, needs_shared
from ser_pipeline.schema import EMOTIONS, PREDICTION_COLUMNS
from ser_pipeline.transcripts import read_transcript

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "ser_pipeline"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    return {**os.environ, "PREFECT_HOME": str(home), "PREFECT_LOGGING_LEVEL": "WARNING"}


def cli(env, *args, check=True, cwd=None):
    result = subprocess.run([*CLI, *map(str, args)], env=env, capture_output=True, text=True, timeout=900, cwd=cwd)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def table_counts(warehouse: Path) -> dict[str, int]:
    with duckdb.connect(str(warehouse / "podcasts.duckdb"), read_only=True) as db:
        return {
            t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("episodes", "segments", "laughter_events")
        }


def rows(warehouse: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse / "podcasts.duckdb"), read_only=True) as db:
        return db.execute(sql).fetchall()


@needs_shared
def test_sentence_run_on_the_shared_episodes_is_exact_and_idempotent(tmp_path, env):
    warehouse = tmp_path / "wh" / "data"
    cli(env, "run", EPISODES, "--warehouse", warehouse, "--segmentation", "sentence")
    assert rows(warehouse, "SELECT DISTINCT status FROM episodes") == [("ok",)]
    for transcript in sorted(EPISODES.glob("*/*.json")):
        sentences = read_transcript(transcript)
        segments = rows(
            warehouse,
            f"SELECT kind, start_s, end_s, speaker, text FROM segments WHERE episode_id = '{transcript.stem}' ORDER BY segment_id",
        )
        assert len(segments) == len(sentences)
        for (kind, start, end, speaker, text), sentence in zip(segments, sentences):
            assert kind == "sentence" and speaker == sentence.speaker and text == sentence.text
            assert abs(start - sentence.start_s) <= 0.010 and abs(end - sentence.end_s) <= 0.010
    scores = json.loads(cli(env, "evaluate", EPISODES, "--warehouse", warehouse).stdout)
    print("scores on the shared episodes:", scores)
    truth_sentences = sum(1 for f in EPISODES.glob("*/*.truth.csv") for line in f.open() if ",speech," in line)
    assert scores["sentences_matched"] == truth_sentences
    assert scores["emotion_uar"] > 1 / len(EMOTIONS) and scores["laughter_event_f1"] > 0.3
    first = table_counts(warehouse)
    assert first["laughter_events"] > 0
    again = cli(env, "run", EPISODES, "--warehouse", warehouse, "--segmentation", "sentence")
    assert "no flow run started" in again.stdout  # every episode unchanged: nothing loaded, nothing decoded
    assert table_counts(warehouse) == first
    changed = cli(env, "run", EPISODES, "--warehouse", warehouse, "--segmentation", "sentence", "--reprocess")
    assert "no flow run started" not in changed.stdout and table_counts(warehouse) == first
    reports = warehouse.parent / "reports"
    assert (reports / "index.html").is_file() and (reports / "plotly.min.js").is_file()
    assert len(list(reports.glob("*.html"))) == 5


@needs_shared
def test_window_run_covers_each_episode_with_contiguous_windows(tmp_path, env):
    warehouse = tmp_path / "data"
    cli(env, "run", EPISODES / "morning-chat", "--warehouse", warehouse, "--segmentation", "window")
    for episode_id, duration in rows(warehouse, "SELECT episode_id, duration_s FROM episodes"):
        windows = rows(
            warehouse, f"SELECT kind, start_s, end_s FROM segments WHERE episode_id = '{episode_id}' ORDER BY start_s"
        )
        assert {w[0] for w in windows} == {"window"}
        assert windows[0][1] == 0 and windows[-1][2] == pytest.approx(duration)
        assert all(a[2] == pytest.approx(b[1]) for a, b in zip(windows, windows[1:]))
        assert all(w[2] - w[1] <= 3.0 + 1e-9 for w in windows)
        assert len(windows) == -(-duration // 3)
    models = json.loads(rows(warehouse, "SELECT models FROM episodes LIMIT 1")[0][0])
    # The default Whisper head has no speaker branch; the default diarizer is recorded (it labels only
    # a transcript's unnamed sentences, so none here).
    assert set(models) == {"emotion", "dims", "laughter", "diarization"} and models["diarization"] == "auto"
    # Nothing to compare: windows match no sentence (laughter is still compared), or no truth at all.
    windows = cli(env, "evaluate", EPISODES, "--warehouse", warehouse, check=False)
    assert windows.returncode == 1 and "no sentence segment matched the truth" in windows.stderr
    assert json.loads(windows.stdout)["sentences_matched"] == 0
    (tmp_path / "no-truth").mkdir()
    nothing = cli(env, "evaluate", tmp_path / "no-truth", "--warehouse", warehouse, check=False)
    assert nothing.returncode == 3 and "nothing to compare" in nothing.stderr and not nothing.stdout
    assert nothing.stderr.startswith("evaluate: ")  # says what it does at once
    quiet = cli(env, "-q", "evaluate", tmp_path / "no-truth", "--warehouse", warehouse, check=False)
    assert quiet.returncode == 3 and quiet.stderr.startswith("error: nothing to compare")


@needs_shared
def test_predict_writes_the_contract_columns_with_files_as_given(tmp_path, env, monkeypatch):
    clips = [
        SHARED_DATA / "ravdess/Actor_01/03-01-05-02-01-01-01.flac",
        SHARED_DATA / "nonverbal/laughing/3S0D_12_8_0_16_0_0_0.flac",
        EPISODES / "late-debate/late-debate-ep01.mp3",
    ]
    relative = [os.path.relpath(c, tmp_path) for c in clips]
    out = tmp_path / "preds.csv"
    subprocess.run(
        [*CLI, "predict", *relative, "--output", "preds.csv"], env=env, cwd=tmp_path, check=True, capture_output=True
    )
    with out.open() as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == PREDICTION_COLUMNS
        table = list(reader)
    assert [r["file"] for r in table] == relative
    for row in table:
        assert row["emotion"] in EMOTIONS
        assert sum(float(row[f"p_{e}"]) for e in EMOTIONS) == pytest.approx(1, abs=1e-4)
        assert all(0 <= float(row[c]) <= 1 for c in ("valence", "arousal", "dominance", "laughter_prob"))


def test_predict_gives_each_bad_file_a_row_with_its_error_and_scores_the_rest(tmp_path, env):
    from conftest import tone, write_audio

    good = write_audio(tmp_path / "good.wav", tone(220, 2.0), 16_000)
    (tmp_path / "notes.mp3").write_bytes(os.urandom(5000))
    result = cli(env, "predict", "notes.mp3", "missing.wav", "good.wav", "--output", "-", check=False, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    table = list(csv.DictReader(result.stdout.splitlines()))
    assert [r["file"] for r in table] == ["notes.mp3", "missing.wav", "good.wav"]
    bad, missing, scored = table
    assert "decod" in bad["error"] and bad["emotion"] == "" and "no such file" in missing["error"]
    assert scored["error"] == "" and scored["emotion"] in EMOTIONS and good.is_file()
    assert "Traceback" not in result.stderr and "failed: notes.mp3" in result.stderr


def test_demo_archive_with_bad_files_finishes_records_failures_and_keeps_good_rows(tmp_path, env, demo_archive):
    archive = tmp_path / "archive"
    shutil.copytree(demo_archive, archive)
    (archive / "demo-talk" / "empty episode.mp3").write_bytes(b"")
    (archive / "demo-talk" / "noise.mp3").write_bytes(os.urandom(4000))
    warehouse = tmp_path / "data"
    result = cli(env, "run", archive, "--warehouse", warehouse, check=False)
    assert result.returncode == 1, result.stderr
    assert "run summary" in result.stdout and "x real time" in result.stderr  # summary table, progress bar
    status = dict(((e, s) for e, s in rows(warehouse, "SELECT episode_id, status FROM episodes")))
    assert status == {"demo-talk-ep01": "ok", "demo-panel-ep01": "ok", "empty episode": "failed", "noise": "failed"}
    errors = dict(rows(warehouse, "SELECT episode_id, error FROM episodes WHERE status = 'failed'"))
    assert "empty" in errors["empty episode"] and "not decodable audio" in errors["noise"]
    speakers = {s for (s,) in rows(warehouse, """SELECT DISTINCT speaker FROM segments WHERE "show" = 'demo-panel'""")}
    assert speakers == {"Host", "Guest"}  # from the SRT's "Name: text" cues
    assert rows(warehouse, "SELECT count(*) FROM segments WHERE episode_id IN ('noise', 'empty episode')") == [(0,)]
    shown = cli(
        env,
        "query",
        """SELECT "show", count(*) AS n FROM segments GROUP BY "show" ORDER BY 1""",
        "--warehouse",
        warehouse,
    ).stdout
    assert "demo-panel" in shown and "demo-talk" in shown
    refused = cli(env, "query", "DROP VIEW episodes", "--warehouse", warehouse, check=False)
    assert refused.returncode == 2 and "read-only" in refused.stderr.lower()


def test_models_lists_the_registry(env):
    listing = cli(env, "models").stdout
    assert "ser-crnn-v1" in listing and "laughter-tcn-v6" in listing and "emotion_uar" in listing
    assert "emotion, dims" in listing  # defaults for two tasks
