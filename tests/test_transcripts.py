from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ser_pipeline.transcripts import (
    Sentence,
    TranscriptError,
    clean_sentences,
    parse_cues,
    parse_podcast_json,
    read_transcript,
)

SRT = """1
00:00:00,507 --> 00:00:02,847
Speaker A: Kids are talking by the door.

2
00:00:03,144 --> 00:01:04,556
Dogs are sitting: by the door, said nobody in particular today.
"""

VTT = """WEBVTT

NOTE a comment

00:00.500 --> 00:02.000
<v Host>Hello there.</v>

01:00:01.250 --> 01:00:03.000
Guest: Hi.
"""


def test_srt_times_speakers_and_text_are_kept_exactly():
    first, second = parse_cues(SRT)
    assert (first.start_s, first.end_s, first.speaker, first.text) == (
        0.507,
        2.847,
        "Speaker A",
        "Kids are talking by the door.",
    )
    # A colon inside a long sentence is not a speaker label.
    assert (second.start_s, second.end_s, second.speaker) == (3.144, 64.556, None)


def test_vtt_voice_tags_hours_and_notes():
    first, second = parse_cues(VTT)
    assert (first.start_s, first.end_s, first.speaker, first.text) == (0.5, 2.0, "Host", "Hello there.")
    assert (second.start_s, second.speaker, second.text) == (3601.25, "Guest", "Hi.")


def test_podcast_json():
    doc = {"version": "1.0.0", "segments": [{"speaker": "A", "startTime": 1.25, "endTime": 2.5, "body": " Hi. "}]}
    assert parse_podcast_json(json.dumps(doc)) == [Sentence(1.25, 2.5, "Hi.", "A")]


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "malformed JSON"),
        ("[]", 'no "segments"'),
        ('{"segments": [{"startTime": "x", "endTime": 1}]}', "numeric startTime"),
        ('{"segments": [{"startTime": NaN, "endTime": 1}]}', "not a finite number"),
        ('{"segments": [{"startTime": 0, "endTime": Infinity}]}', "not a finite number"),
        ('{"segments": [{"startTime": 0, "endTime": 1, "speaker": ["A", "B"]}]}', "speaker that is not a name"),
        ('{"segments": [{"startTime": 0, "endTime": 1, "speaker": {"id": 1}}]}', "speaker that is not a name"),
        ('{"segments": ["hello"]}', "not an object"),
    ],
)
def test_bad_json_is_a_transcript_error(text, message):
    with pytest.raises(TranscriptError, match=message):
        parse_podcast_json(text)


def test_malformed_cue_timing_is_an_error():
    with pytest.raises(TranscriptError, match="malformed cue timing"):
        parse_cues("1\n00:00:01 --> soon\nhello\n")


def test_read_transcript_names_the_file_and_decodes_legacy_encodings(tmp_path):
    bad = tmp_path / "ep.json"
    bad.write_text("{")
    with pytest.raises(TranscriptError, match="ep.json"):
        read_transcript(bad)
    legacy = tmp_path / "ep.srt"
    legacy.write_bytes("1\n00:00:01,000 --> 00:00:02,000\nCafé crème\n".encode("cp1252"))
    assert read_transcript(legacy)[0].text == "Café crème"
    utf16 = tmp_path / "ep16.vtt"
    utf16.write_bytes("WEBVTT\n\n00:01.000 --> 00:02.000\nnaïve\n".encode("utf-16"))
    assert read_transcript(utf16)[0].text == "naïve"


def test_numbered_speakers_are_names_and_a_body_that_is_not_text_is_empty():
    (sentence,) = parse_podcast_json('{"segments": [{"startTime": 0, "endTime": 1, "speaker": 7, "body": [1]}]}')
    assert sentence == Sentence(0.0, 1.0, "", "7")


def test_utf16_with_an_odd_number_of_bytes_reads_all_but_the_cut_character(tmp_path):
    srt = tmp_path / "ep.srt"
    srt.write_bytes("1\n00:00:01,000 --> 00:00:02,000\nHost: hello\n".encode("utf-16") + b"\x00")
    (sentence,) = read_transcript(srt)
    assert (sentence.speaker, sentence.text) == ("Host", "hello \ufffd")  # the stray byte, on its own line


def test_a_transcript_larger_than_any_real_one_is_refused_unread(tmp_path, monkeypatch):
    from ser_pipeline import transcripts

    monkeypatch.setattr(transcripts, "MAX_TRANSCRIPT_BYTES", 100)
    big = tmp_path / "ep.srt"
    big.write_text("1\n00:00:01,000 --> 00:00:02,000\n" + "x" * 200 + "\n")
    with pytest.raises(TranscriptError, match="ep.srt: 2.. bytes, more than the 100"):
        read_transcript(big)


def test_clean_sorts_drops_impossible_and_clips_to_duration():
    raw = [
        Sentence(5, 6, "b"),
        Sentence(1, 2, "a"),
        Sentence(-1, 1, "neg"),
        Sentence(3, 2, "rev"),
        Sentence(9, 12, "end"),
        Sentence(11, 12, "past"),
    ]
    kept, warnings = clean_sentences(raw, duration_s=10)
    assert [(s.text, s.start_s, s.end_s) for s in kept] == [("a", 1, 2), ("b", 5, 6), ("end", 9, 10)]
    assert len(warnings) == 3


milliseconds = st.integers(min_value=0, max_value=10 * 3600 * 1000)


@given(st.lists(st.tuples(milliseconds, st.integers(min_value=1, max_value=60_000)), min_size=1, max_size=20))
def test_srt_round_trip_keeps_every_time_to_the_millisecond(cues):
    def stamp(ms):
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    text = "\n".join(f"{i}\n{stamp(a)} --> {stamp(a + d)}\nline {i}\n" for i, (a, d) in enumerate(cues, 1))
    parsed = parse_cues(text)
    assert [(round(s.start_s * 1000), round(s.end_s * 1000)) for s in parsed] == [(a, a + d) for a, d in cues]


@given(st.lists(st.tuples(st.floats(-10, 100), st.floats(-10, 100)), max_size=30), st.floats(0.1, 100))
def test_clean_output_is_always_placeable(pairs, duration):
    kept, _ = clean_sentences([Sentence(a, b, "x") for a, b in pairs], duration)
    assert all(0 <= s.start_s < s.end_s <= duration for s in kept)
    assert [s.start_s for s in kept] == sorted(s.start_s for s in kept)
