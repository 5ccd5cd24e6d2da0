from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SHARED_DATA, needs_shared
from ser_pipeline.segmentation import sentence_segments, vad_segments, window_segments
from ser_pipeline.transcripts import Sentence


@pytest.mark.parametrize(
    "duration, window, hop, expected",
    [
        (9.0, 3.0, None, [(0, 3), (3, 6), (6, 9)]),
        (10.0, 3.0, None, [(0, 3), (3, 6), (6, 9), (9, 10)]),
        (2.0, 3.0, None, [(0, 2)]),
        (7.0, 3.0, 2.0, [(0, 3), (2, 5), (4, 7)]),
        (0.0, 3.0, None, []),
    ],
)
def test_windows(duration, window, hop, expected):
    segments = window_segments(duration, window, hop)
    assert [(s.start_s, s.end_s) for s in segments] == expected
    assert all(s.kind == "window" for s in segments)
    assert [s.segment_id for s in segments] == list(range(len(segments)))


@pytest.mark.parametrize("window, hop", [(0, None), (3, -1), (3, 4)])
def test_window_parameters_that_would_lose_audio_are_refused(window, hop):
    with pytest.raises(ValueError):
        window_segments(10.0, window, hop)


@settings(deadline=None)
@given(st.floats(0.01, 20_000), st.sampled_from([1.0, 2.5, 3.0, 5.0]))
def test_default_windows_are_contiguous_and_cover_the_duration(duration, window):
    segments = window_segments(duration, window)
    assert segments[0].start_s == 0 and segments[-1].end_s == pytest.approx(duration)
    assert all(a.end_s == pytest.approx(b.start_s) for a, b in zip(segments, segments[1:]))
    assert all(0 < s.end_s - s.start_s <= window + 1e-9 for s in segments)


def test_sentence_segments_keep_times_speaker_and_text():
    segments = sentence_segments([Sentence(0.507, 2.847, "Hi.", "A"), Sentence(3.1, 4.0, "Yo.")])
    assert [(s.segment_id, s.kind, s.start_s, s.end_s, s.speaker, s.text) for s in segments] == [
        (0, "sentence", 0.507, 2.847, "A", "Hi."),
        (1, "sentence", 3.1, 4.0, None, "Yo."),
    ]


def test_vad_finds_nothing_in_silence():
    assert vad_segments(np.zeros(16_000 * 3, np.float32)) == []


@needs_shared
def test_vad_finds_the_utterance_inside_a_ravdess_clip():
    import soundfile as sf

    samples, _ = sf.read(SHARED_DATA / "ravdess/Actor_03/03-01-05-02-01-01-03.flac", dtype="float32")
    padded = np.concatenate([np.zeros(16_000, np.float32), samples, np.zeros(16_000, np.float32)])
    segments = vad_segments(padded)
    assert len(segments) >= 1 and all(s.kind == "vad" for s in segments)
    assert segments[0].start_s > 1.0 and segments[-1].end_s < 1.0 + len(samples) / 16_000
