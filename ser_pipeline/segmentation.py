"""Segmentation: transcript sentences, fixed windows, or voice-activity utterances."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np

from ser_pipeline.transcripts import Sentence


class Segmentation(str, Enum):
    sentence = "sentence"
    window = "window"
    vad = "vad"


@dataclass(frozen=True)
class Segment:
    segment_id: int
    kind: str
    start_s: float
    end_s: float
    speaker: str | None = None
    text: str | None = None
    speaker_source: str | None = None  # 'transcript', 'embedded' or 'pyannote' where `speaker` is set

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def sentence_segments(sentences: list[Sentence]) -> list[Segment]:
    """One segment per transcript sentence, times exactly as the transcript gives them."""
    return [
        Segment(
            index,
            Segmentation.sentence.value,
            s.start_s,
            s.end_s,
            s.speaker,
            s.text,
            "transcript" if s.speaker else None,
        )
        for index, s in enumerate(sentences)
    ]


def window_segments(duration_s: float, window_s: float = 3.0, hop_s: float | None = None) -> list[Segment]:
    """Windows of `window_s` every `hop_s` (default: `window_s`) from 0 to the end of the audio.

    The windows cover the whole duration; the last one ends at the audio's end and so may be
    shorter than `window_s` (it is never padded with invented audio).
    """
    hop_s = window_s if hop_s is None else hop_s
    if window_s <= 0 or hop_s <= 0:
        raise ValueError(f"window and hop must be positive (got window={window_s}, hop={hop_s})")
    if hop_s > window_s:
        raise ValueError(f"hop {hop_s}s is longer than the window {window_s}s: audio would be skipped")
    if duration_s <= 0:
        return []
    # Index-based starts so that hour-long episodes do not accumulate float drift.
    count = max(1, math.ceil(max(duration_s - window_s, 0) / hop_s - 1e-9) + 1)
    return [
        Segment(i, Segmentation.window.value, i * hop_s, min(i * hop_s + window_s, duration_s)) for i in range(count)
    ]


def vad_segments(samples: np.ndarray, min_speech_s: float = 0.25, min_silence_s: float = 0.3) -> list[Segment]:
    """Voice-activity utterances: silero-vad's speech spans (its weights ship with the package,
    offline; run batched by `voice_activity`)."""
    from ser_pipeline.voice_activity import speech_timestamps

    return [
        Segment(i, Segmentation.vad.value, span.start_s, span.end_s)
        for i, span in enumerate(speech_timestamps(samples, min_speech_s, min_silence_s))
    ]
