"""Transcript parsing: Podcasting 2.0 JSON, SubRip (SRT) and WebVTT into timed sentences.

Times are kept exactly as the transcript gives them (seconds, float); cleaning (sorting,
dropping impossible cues, clipping to the audio) is a separate step so that what was
changed can be reported.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

TRANSCRIPT_SUFFIXES: tuple[str, ...] = (".json", ".srt", ".vtt")
# A 3-hour episode's transcript is about 200 kB of SRT or 1 MB of JSON with word timings.
MAX_TRANSCRIPT_BYTES = 20_000_000


class TranscriptError(ValueError):
    """A transcript that cannot be read; the message says which file and why."""


@dataclass(frozen=True)
class Sentence:
    start_s: float
    end_s: float
    text: str
    speaker: str | None = None


_TIMESTAMP = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})")
_CUE_TIMING = re.compile(rf"^\s*({_TIMESTAMP.pattern})\s*-->\s*({_TIMESTAMP.pattern})")
_VTT_VOICE = re.compile(r"^<v(?:\.[^ >]*)?\s+([^>]+)>")
_TAG = re.compile(r"<[^>]+>")
# "Speaker A: text" as written by most SRT exporters; a short label, not a sentence with a colon.
_SPEAKER_PREFIX = re.compile(r"^([^:\n]{1,40}):\s+(.+)$", re.S)


def _timestamp_seconds(text: str) -> float:
    match = _TIMESTAMP.fullmatch(text.strip())
    if match is None:
        raise TranscriptError(f"not a timestamp: {text!r}")
    hours, minutes, seconds, fraction = match.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(fraction.ljust(3, "0")) / 1000


def _looks_like_name(label: str) -> bool:
    """'Speaker A', 'Host', 'Dr. Jane Smith': up to four capitalised words, not a clause."""
    words = label.split()
    return 0 < len(words) <= 4 and all(w[0].isupper() or w[0].isdigit() for w in words)


def _split_speaker(text: str) -> tuple[str | None, str]:
    voice = _VTT_VOICE.match(text)
    if voice:
        return voice.group(1).strip(), _TAG.sub("", text).strip()
    text = _TAG.sub("", text).strip()
    prefix = _SPEAKER_PREFIX.match(text)
    if prefix and _looks_like_name(prefix.group(1)):
        return prefix.group(1).strip(), prefix.group(2).strip()
    return None, text


def parse_cues(text: str) -> list[Sentence]:
    """Parse SRT or WebVTT cues (they differ only in headers, numbering and the decimal mark)."""
    sentences = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")):
        lines = [line for line in block.strip().split("\n") if line.strip()]
        timing_index = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if timing_index is None:
            continue  # WEBVTT header, NOTE, STYLE blocks and stray numbering
        timing = _CUE_TIMING.match(lines[timing_index])
        if timing is None:
            raise TranscriptError(f"malformed cue timing: {lines[timing_index]!r}")
        start, end = _timestamp_seconds(timing.group(1)), _timestamp_seconds(timing.group(6))
        speaker, body = _split_speaker(" ".join(lines[timing_index + 1 :]))
        sentences.append(Sentence(start, end, body, speaker))
    return sentences


def parse_podcast_json(text: str) -> list[Sentence]:
    """Parse a Podcasting 2.0 JSON transcript (`{"segments": [{startTime, endTime, body, speaker}]}`)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise TranscriptError(f"malformed JSON transcript: {error}") from None
    segments = document.get("segments") if isinstance(document, dict) else None
    if not isinstance(segments, list):
        raise TranscriptError('JSON transcript has no "segments" list')
    sentences = []
    for index, segment in enumerate(segments):
        if not isinstance(segment, dict):
            raise TranscriptError(f"segment {index} is not an object")
        try:
            start, end = float(segment["startTime"]), float(segment["endTime"])
        except (KeyError, TypeError, ValueError):
            raise TranscriptError(f"segment {index} lacks numeric startTime/endTime") from None
        if not (math.isfinite(start) and math.isfinite(end)):
            raise TranscriptError(f"segment {index} has a time that is not a finite number")
        speaker = segment.get("speaker")
        if isinstance(speaker, int | float) and not isinstance(speaker, bool):
            speaker = str(speaker)  # numbered speakers
        if speaker is not None and not isinstance(speaker, str):
            raise TranscriptError(f"segment {index} has a speaker that is not a name: {speaker!r}"[:200])
        body = segment.get("body", "")
        sentences.append(Sentence(start, end, body.strip() if isinstance(body, str) else "", speaker or None))
    return sentences


def _decode_text(raw: bytes) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", errors="replace")  # a cut-off last character becomes U+FFFD
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Legacy exports are mostly Windows-1252; the rare undefined byte becomes U+FFFD.
        return raw.decode("cp1252", errors="replace")


def read_transcript(path: Path) -> list[Sentence]:
    """Read a transcript file by its suffix; raises TranscriptError naming the file."""
    suffix = path.suffix.lower()
    if suffix not in TRANSCRIPT_SUFFIXES:
        raise TranscriptError(f"{path.name}: unsupported transcript type {suffix!r}")
    try:
        if (size := path.stat().st_size) > MAX_TRANSCRIPT_BYTES:
            raise TranscriptError(f"{size} bytes, more than the {MAX_TRANSCRIPT_BYTES} a transcript may have")
        text = _decode_text(path.read_bytes())
        return parse_podcast_json(text) if suffix == ".json" else parse_cues(text)
    except (OSError, RecursionError) as error:  # unreadable; JSON nested beyond any transcript
        raise TranscriptError(f"{path.name}: cannot be read ({type(error).__name__})") from None
    except TranscriptError as error:
        raise TranscriptError(f"{path.name}: {error}") from None


def clean_sentences(sentences: list[Sentence], duration_s: float) -> tuple[list[Sentence], list[str]]:
    """Sort by start, drop cues that cannot be placed in the audio, clip ends to the duration.

    Returns the usable sentences and one warning per kind of change made.
    """
    warnings = []
    ordered = sorted(sentences, key=lambda s: (s.start_s, s.end_s))
    if ordered != sentences:
        warnings.append("transcript cues were not in time order; sorted")
    kept, dropped = [], 0
    for sentence in ordered:
        end = min(sentence.end_s, duration_s)
        if sentence.start_s < 0 or end <= sentence.start_s:
            dropped += 1
            continue
        if end != sentence.end_s:
            warnings.append(f"cue ending at {sentence.end_s:.3f}s clipped to the audio's end")
            sentence = Sentence(sentence.start_s, end, sentence.text, sentence.speaker)
        kept.append(sentence)
    if dropped:
        warnings.append(f"{dropped} cue(s) with negative, reversed or past-the-end times dropped")
    return kept, warnings
