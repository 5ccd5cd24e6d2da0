from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import EPISODES, needs_shared
from ser_pipeline.archive import Episode
from ser_pipeline.pipeline import RunConfig, VadPlan, segment_episode, segment_plan
from ser_pipeline.segmentation import Segmentation, window_segments

SAMPLES = np.zeros(16_000 * 2, np.float32)


def episode(transcript: Path | None) -> Episode:
    return Episode("show", "ep", "ep", Path("ep.mp3"), transcript_path=transcript)


def config(kind: Segmentation) -> RunConfig:
    return RunConfig(Path("unused"), kind, window_s=3.0)


def test_sentence_segmentation_uses_the_transcript_and_reports_cleaning(tmp_path):
    transcript = tmp_path / "ep.srt"
    transcript.write_text("1\n00:00:01,000 --> 00:00:02,500\nHost: Hi.\n\n2\n00:00:01,500 --> 00:00:09,000\nBye.\n")
    segments, warnings = segment_episode(episode(transcript), lambda: SAMPLES, 5.0, config(Segmentation.sentence))
    assert [(s.kind, s.start_s, s.end_s, s.speaker) for s in segments] == [
        ("sentence", 1.0, 2.5, "Host"),
        ("sentence", 1.5, 5.0, None),
    ]
    assert any("clipped" in w for w in warnings)


@pytest.mark.parametrize(
    "content, reason",
    [("{broken", "transcript unreadable"), ('{"segments": []}', "no usable sentences")],
)
def test_a_bad_transcript_falls_back_to_voice_activity_with_a_warning(tmp_path, content, reason):
    transcript = tmp_path / "ep.json"
    transcript.write_text(content)
    segments, warnings = segment_episode(episode(transcript), lambda: SAMPLES, 2.0, config(Segmentation.sentence))
    assert segments == []  # silence: no utterances
    assert any(reason in w for w in warnings)


def test_no_transcript_means_voice_activity_and_window_ignores_transcripts(tmp_path):
    transcript = tmp_path / "ep.srt"
    transcript.write_text("1\n00:00:00,000 --> 00:00:01,000\nHi.\n")
    assert segment_episode(episode(None), lambda: SAMPLES, 2.0, config(Segmentation.sentence)) == ([], [])
    assert segment_episode(episode(transcript), lambda: SAMPLES, 2.0, config(Segmentation.vad)) == ([], [])
    windows, _ = segment_episode(episode(transcript), lambda: SAMPLES, 7.0, config(Segmentation.window))
    assert [(s.start_s, s.end_s) for s in windows] == [(0, 3), (3, 6), (6, 7)]


def test_segment_plan_gives_each_whole_window_once_as_window_segments_would():
    plan = segment_plan(episode(None), config(Segmentation.window))
    given = [s for seconds in (0.5, 3.0, 3.0, 7.9, 10.0, 10.0) for s in plan.due(seconds)]
    final = window_segments(11.2)
    assert [(s.start_s, s.end_s) for s in given] == [(s.start_s, s.end_s) for s in final[:3]]
    assert plan.pending_start_s == 9.0  # the last, shorter window (if any) starts there


def test_segment_plan_gives_sentences_once_in_order_of_their_end(tmp_path):
    transcript = tmp_path / "t.srt"
    transcript.write_text(
        "1\n00:00:00,000 --> 00:00:04,000\nlong\n\n2\n00:00:01,000 --> 00:00:02,000\nshort\n\n"
        "3\n00:00:05,000 --> 00:00:06,000\nlast\n"
    )
    plan = segment_plan(episode(transcript), config(Segmentation.sentence))
    assert plan.pending_start_s == 0.0
    assert [s.text for s in plan.due(2.5)] == ["short"]
    assert plan.pending_start_s == 0.0  # "long", still to come, began at 0
    assert [s.text for s in plan.due(4.0)] == ["long"] and plan.pending_start_s == 5.0
    assert plan.due(4.5) == [] and [s.text for s in plan.due(60.0)] == ["last"]
    assert plan.pending_start_s == float("inf")
    assert isinstance(segment_plan(episode(None), config(Segmentation.sentence)), VadPlan)  # no transcript
    assert isinstance(segment_plan(episode(transcript), config(Segmentation.vad)), VadPlan)


@needs_shared
def test_voice_activity_is_handed_out_while_decoding_as_the_whole_waveform_gives_it():
    from ser_pipeline.audio import decode
    from ser_pipeline.segmentation import vad_segments

    samples = decode(EPISODES / "late-debate" / "late-debate-ep02.mp3").samples
    whole = vad_segments(samples)
    plan, given, block = VadPlan(), [], 30 * 16_000
    for start in range(0, len(samples), block):
        plan.hear(samples[start : start + block])
        heard = min(start + block, len(samples)) / 16_000
        due = plan.due(heard - 0.05)  # the log-mel frames lag the samples a little
        assert all(s.end_s <= heard - 0.05 for s in due)
        given += due
        later = [s.start_s for s in whole if s not in given]
        assert plan.pending_start_s <= min(later, default=float("inf"))  # no sample a later segment reads is let go
    assert len(given) > 0.8 * len(whole)  # most were handed out before the end
    assert plan.finish() == whole and given == whole[: len(given)]


@pytest.fixture
def one_episode(tmp_path):
    from conftest import write_audio

    t = np.arange(16_000 * 8) / 16_000
    voiced = (0.3 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    audio = write_audio(tmp_path / "archive" / "show" / "ep.wav", voiced, 16_000)
    transcript = audio.with_suffix(".srt")
    transcript.write_text("1\n00:00:00,500 --> 00:00:03,000\nA\n\n2\n00:00:03,500 --> 00:00:07,000\nB\n")
    return Episode("show", "ep", "ep", audio, transcript_path=transcript)


def test_an_unchanged_episode_is_skipped_without_decoding_and_changes_redo_it(
    one_episode, analyzer, tmp_path, monkeypatch
):
    import ser_pipeline.pipeline as pipeline

    sentences = RunConfig(tmp_path / "wh", Segmentation.sentence)
    first = pipeline.process_episode(one_episode, sentences, analyzer, "run-1")
    assert first.status == "ok" and first.segments == 2
    recorded = pipeline.previous_row(sentences.warehouse, one_episode)

    decodes = []
    real_decode = pipeline.decode_episode
    monkeypatch.setattr(pipeline, "decode_episode", lambda *a, **k: decodes.append(a[0]) or real_decode(*a, **k))
    again = pipeline.process_episode(one_episode, sentences, analyzer, "run-2")
    assert again.status == "skipped" and again.duration_s == pytest.approx(8.0, abs=0.01) and decodes == []
    assert pipeline.previous_row(sentences.warehouse, one_episode) == recorded  # rows untouched

    os.utime(one_episode.audio_path, ns=(1, 1))  # touched, same bytes: hashed again, still unchanged
    assert pipeline.process_episode(one_episode, sentences, analyzer, "run-3").status == "skipped"

    windows = RunConfig(tmp_path / "wh", Segmentation.window, window_s=2.0)
    assert pipeline.process_episode(one_episode, windows, analyzer, "run-4").segments == 4  # a setting changed
    assert pipeline.process_episode(one_episode, windows, analyzer, "run-5").status == "skipped"
    one_episode.transcript_path.write_text("1\n00:00:00,500 --> 00:00:07,000\nA and B\n")
    back = pipeline.process_episode(one_episode, sentences, analyzer, "run-6")  # transcript changed
    assert back.status == "ok" and back.segments == 1
    forced = pipeline.process_episode(one_episode, replace(sentences, reprocess=True), analyzer, "run-7")
    assert forced.status == "ok" and len(decodes) == 3


def test_a_permanently_bad_file_is_not_retried_while_unchanged(tmp_path, analyzer):
    import ser_pipeline.pipeline as pipeline

    bad = tmp_path / "show" / "bad.mp3"
    bad.parent.mkdir()
    bad.write_bytes(b"\x00" * 3000)
    episode = Episode("show", "bad", "bad", bad)
    config = RunConfig(tmp_path / "wh", Segmentation.window)
    assert pipeline.process_episode(episode, config, analyzer, "r1").status == "failed"
    assert pipeline.process_episode(episode, config, analyzer, "r2").status == "skipped"
    bad.write_bytes(b"\x01" * 3000)
    assert pipeline.process_episode(episode, config, analyzer, "r3").status == "failed"


def test_rows_scored_by_another_scoring_version_are_scored_again_and_counted(
    one_episode, analyzer, tmp_path, monkeypatch
):
    import ser_pipeline.fingerprints as fingerprints
    import ser_pipeline.pipeline as pipeline

    config = RunConfig(tmp_path / "wh", Segmentation.window, window_s=2.0)
    first = pipeline.process_episode(one_episode, config, analyzer, "run-1")
    assert first.status == "ok" and not first.older_code
    assert pipeline.previous_row(config.warehouse, one_episode)["pipeline_version"] == pipeline.PIPELINE_VERSION
    assert pipeline.process_episode(one_episode, config, analyzer, "run-2").status == "skipped"
    monkeypatch.setattr(fingerprints, "SCORING_VERSION", fingerprints.SCORING_VERSION + 1)
    monkeypatch.setattr(pipeline, "PIPELINE_VERSION", "next")
    upgraded = pipeline.process_episode(one_episode, config, analyzer, "run-3")
    assert upgraded.status == "ok" and upgraded.older_code
    assert pipeline.previous_row(config.warehouse, one_episode)["pipeline_version"] == "next"
    assert pipeline.process_episode(one_episode, config, analyzer, "run-4").status == "skipped"


@needs_shared
def test_an_episode_without_a_transcript_is_segmented_while_decoding_and_never_decoded_again(
    analyzer, tmp_path, monkeypatch
):
    """Voice activity heard during the one streaming pass: the waveform is not kept, nor decoded
    again, and the rows are those of the whole waveform's voice activity scored at once."""
    import pyarrow.parquet as pq

    import ser_pipeline.pipeline as pipeline
    from ser_pipeline.audio import decode
    from ser_pipeline.segmentation import vad_segments

    path = EPISODES / "morning-chat" / "morning-chat-ep02.mp3"
    samples = decode(path).samples
    expected = vad_segments(samples)
    whole = analyzer.analyze(samples, expected).columns
    monkeypatch.setattr(pipeline, "decode", lambda path: pytest.fail(f"{path} decoded again"))
    config = RunConfig(tmp_path / "wh", Segmentation.sentence)
    outcome = pipeline.process_episode(Episode("show", "ep", "ep", path), config, analyzer, "r")
    assert outcome.status == "ok", outcome.error
    rows = pq.read_table(next((config.warehouse / "segments").rglob("*.parquet"))).to_pandas()
    assert list(zip(rows.start_s, rows.end_s)) == [(s.start_s, s.end_s) for s in expected]
    assert set(rows.kind) == {"vad"}
    assert (rows.emotion.to_numpy() == whole["emotion"]).mean() > 0.97  # other batches: bfloat16 rounds a little apart
    for column in ("p_angry", "p_happy", "p_neutral", "p_sad", "valence", "laughter_prob"):
        np.testing.assert_allclose(rows[column], whole[column], atol=0.02, err_msg=column)


@needs_shared
def test_a_transcript_wholly_past_the_audio_falls_back_to_voice_activity_without_the_streamed_samples(
    analyzer, tmp_path, monkeypatch
):
    """The plan expected sentences the audio never reaches, so the samples streamed for them were
    let go; voice activity then needs the whole waveform, which is decoded again."""
    import shutil

    import ser_pipeline.pipeline as pipeline

    audio = tmp_path / "show" / "ep.mp3"
    audio.parent.mkdir()
    shutil.copyfile(EPISODES / "morning-chat" / "morning-chat-ep01.mp3", audio)
    transcript = audio.with_suffix(".srt")
    transcript.write_text("1\n02:00:00,000 --> 02:00:02,000\nlate\n")
    late = Episode("show", "ep", "ep", audio, transcript_path=transcript)
    decodes, real_decode = [], pipeline.decode
    monkeypatch.setattr(pipeline, "decode", lambda path: decodes.append(path) or real_decode(path))
    outcome = pipeline.process_episode(late, RunConfig(tmp_path / "wh", Segmentation.sentence), analyzer, "r")
    assert outcome.status == "ok", outcome.error
    assert decodes == [audio]  # once, for voice activity and the Whisper head alike
    assert outcome.segments > 10 and any("voice activity" in w for w in outcome.warnings), outcome.warnings


@needs_shared
def test_the_episode_reading_can_be_turned_off_and_an_episode_is_then_scored_again(tmp_path, analyzer):
    """By voice activity no utterance has a speaker: with the episode reading (the default) each is
    read alone and against the episode, without it alone. The choice is recorded with the rows and
    redoes the episode; on, it leaves the fingerprints recorded before it was a choice alone."""
    import json

    from conftest import warehouse_tables
    from ser_pipeline.archive import discover
    from ser_pipeline.inference import Analyzer
    from ser_pipeline.pipeline import process_episode
    from ser_pipeline.schema import EMOTION_PROB_COLUMNS
    from ser_pipeline.warehouse import refresh_views

    alone = Analyzer(device="cpu", episode_reading=False)
    assert "episode_reading" not in analyzer.models.fingerprints
    assert alone.models.fingerprints == {**analyzer.models.fingerprints, "episode_reading": False}
    episode = discover(EPISODES)[0]
    config = RunConfig(tmp_path / "wh", Segmentation.vad)
    probabilities = []
    for reader, expected in ((analyzer, "ok"), (alone, "ok"), (alone, "skipped")):
        assert process_episode(episode, config, reader, "r").status == expected
        refresh_views(config.warehouse)
        tables = warehouse_tables(config.warehouse)
        probabilities.append(tables["segments"][list(EMOTION_PROB_COLUMNS)].to_numpy())
    models = json.loads(tables["episodes"]["models"][0])
    assert models["emotion_reading"] == "alone" and "emotion_reading" not in analyzer.models.ids
    with_episode, without = probabilities[:2]
    assert len(with_episode) >= 8 and with_episode.shape == without.shape
    assert (np.abs(with_episode - without).max(axis=1) > 1e-4).all()  # every utterance read otherwise
    np.testing.assert_allclose(without.sum(axis=1), 1.0, atol=1e-5)
