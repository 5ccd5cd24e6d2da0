"""Speaker attribution for segments whose transcript names no speaker: a pyannote.audio
diarization pipeline (a local directory, or a hub id such as
`pyannote/speaker-diarization-community-1` with a token in HF_TOKEN) labels who speaks when,
and each such segment takes the label that overlaps it most. The episode's decoded 16 kHz
waveform is handed to the pipeline in memory: pyannote never decodes the file itself.
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import torch

from ser_pipeline.audio import SAMPLE_RATE
from ser_pipeline.segmentation import Segment

Turn = tuple[float, float, str]


class DiarizationError(RuntimeError):
    pass


class Diarizer:
    """A loaded pyannote.audio pipeline; `source` names it in the warehouse's `models`."""

    def __init__(self, pipeline, source: str):
        self.pipeline, self.source = pipeline, source

    @classmethod
    def load(cls, source: str, device: torch.device, token: str | None = None) -> Diarizer:
        try:
            from pyannote.audio import Pipeline
        except ImportError:
            raise DiarizationError(
                "speaker diarization needs pyannote.audio: pip install -e '.[diarization]'"
            ) from None
        try:
            pipeline = Pipeline.from_pretrained(source, token=token or os.environ.get("HF_TOKEN"))
        except Exception as error:  # noqa: BLE001 - hub, network and file errors alike: one clear line
            raise DiarizationError(
                f"cannot load the diarization pipeline {source!r} ({type(error).__name__}: "
                f"{' '.join(str(error).split())[:300]}); offline, give a local directory holding its "
                "config.yaml and models; for a gated hub model, set HF_TOKEN"
            ) from None
        if pipeline is None:
            raise DiarizationError(f"the hub refused {source!r}: accept its conditions and set HF_TOKEN")
        return cls(pipeline.to(device), source)

    def turns(self, samples: np.ndarray) -> list[Turn]:
        """(start, end, speaker label) of every speaker turn in a 16 kHz mono episode."""
        waveform = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None]
        output = self.pipeline({"waveform": waveform, "sample_rate": SAMPLE_RATE})
        annotation = getattr(output, "speaker_diarization", output)  # pyannote 4 wraps it; 3 did not
        return [
            (float(turn.start), float(turn.end), str(label))
            for turn, _, label in annotation.itertracks(yield_label=True)
        ]


def attribute(segments: list[Segment], turns: list[Turn]) -> list[Segment]:
    """Segments without a speaker take the turn label that overlaps them longest (none when
    no turn overlaps); segments the transcript attributed keep their speaker."""

    def speaker(segment: Segment) -> str | None:
        overlaps: dict[str, float] = {}
        for start, end, label in turns:
            overlap = min(end, segment.end_s) - max(start, segment.start_s)
            if overlap > 0:
                overlaps[label] = overlaps.get(label, 0.0) + overlap
        return max(overlaps, key=overlaps.get) if overlaps else None

    return [s if s.speaker is not None else replace(s, speaker=speaker(s)) for s in segments]
