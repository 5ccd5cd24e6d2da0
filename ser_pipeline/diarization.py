"""Speaker attribution for segments whose transcript names no speaker: a pyannote.audio
diarization pipeline labels who speaks when, and each such segment takes the label that overlaps
it most. The episode's decoded 16 kHz waveform is handed to the pipeline in memory: pyannote
never decodes the file itself.

pyannote loads its checkpoints with pickle (`weights_only=False`), which can run code, so what
it loads is pinned: a hub pipeline by its commit (`pyannote/speaker-diarization-community-1@<40
hex>`, a token in HF_TOKEN for gated ones), a local directory by the sha256 of its files
(`DIR@sha256:<64 hex>`; the error for an unpinned folder gives the value to check and use).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ser_pipeline.audio import SAMPLE_RATE
from ser_pipeline.segmentation import Segment

_PIN = re.compile(r"^(sha256:[0-9a-f]{64}|[0-9a-f]{40})$")


class DiarizationError(RuntimeError):
    pass


Span = tuple[float, float]


@dataclass(frozen=True)
class Turn:
    """A stretch of one speaker's talk."""

    start_s: float
    end_s: float
    speaker: str


def without(spans: list[Span], holes: list[Span], shortest_s: float = 0.1) -> list[Span]:
    """`spans` with `holes` cut out of them (in order; pieces under `shortest_s` dropped)."""
    out = []
    for start_s, end_s in spans:
        pieces = [(start_s, end_s)]
        for hole_start, hole_end in holes:
            pieces = [
                piece
                for first, last in pieces
                for piece in ((first, min(last, hole_start)), (max(first, hole_end), last))
                if piece[1] > piece[0]
            ]
        out += [(first, last) for first, last in pieces if last - first >= shortest_s]
    return out


class Diarizer:
    """A loaded pyannote.audio pipeline; `source` names it in the warehouse's `models`."""

    label_source = "pyannote"
    sentences_only = False  # labels every segment without a speaker

    def __init__(self, pipeline, source: str):
        self.pipeline, self.source = pipeline, source

    @classmethod
    def load(cls, source: str, device: torch.device, token: str | None = None) -> Diarizer:
        location, revision = check_pin(source)
        try:
            from pyannote.audio import Pipeline
        except ImportError:
            raise DiarizationError(
                "speaker diarization needs pyannote.audio: pip install -e '.[diarization]'"
            ) from None
        try:
            pipeline = Pipeline.from_pretrained(location, revision=revision, token=token or os.environ.get("HF_TOKEN"))
        except Exception as error:  # noqa: BLE001 - hub, network and file errors alike: one clear line
            raise DiarizationError(
                f"cannot load the diarization pipeline {source!r} ({type(error).__name__}: "
                f"{' '.join(str(error).split())[:300]}); offline, give a local directory holding its "
                "config.yaml and models; for a gated hub model, set HF_TOKEN"
            ) from None
        if pipeline is None:
            raise DiarizationError(f"the hub refused {source!r}: accept its conditions and set HF_TOKEN")
        return cls(pipeline.to(device), source)

    def turns(
        self,
        samples: np.ndarray,
        regions: list[Span] | None = None,
        utterances: bool = False,
        exclude: list[Span] | None = None,
    ) -> list[Turn]:
        """Every speaker turn in a 16 kHz mono episode (pyannote finds speech itself: `regions` and
        `utterances` are unread), none over the spans of `exclude` (laughs: no one's speech)."""
        waveform = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None]
        output = self.pipeline({"waveform": waveform, "sample_rate": SAMPLE_RATE})
        annotation = getattr(output, "speaker_diarization", output)  # pyannote 4 wraps it; 3 did not
        return [
            Turn(first, last, str(label))
            for turn, _, label in annotation.itertracks(yield_label=True)
            for first, last in without([(float(turn.start), float(turn.end))], exclude or [], shortest_s=0.0)
        ]


def folder_sha256(folder: Path) -> str:
    """The sha256 of a folder's files: each one's path (relative) and contents, in path order."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(file.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def check_pin(source: str) -> tuple[str, str | None]:
    """(where to load from, hub revision) for a pinned source; DiarizationError otherwise."""
    location, _, pin = source.rpartition("@")
    if not location or not _PIN.match(pin):
        location, pin = source, ""
    if Path(location).is_dir():
        actual = f"sha256:{folder_sha256(Path(location))}"
        if pin != actual:
            stated = f"it is pinned to {pin}, its files now hash to {actual}" if pin else f"its files hash to {actual}"
            raise DiarizationError(
                f"the pipeline folder {location} is not pinned to its contents ({stated}); pyannote loads "
                f"checkpoints with pickle, which can run code: once you trust these files, use "
                f"--diarization '{location}@{actual}'"
            )
        return location, None
    if not re.fullmatch(r"[0-9a-f]{40}", pin):
        raise DiarizationError(
            f"the hub pipeline {location!r} is not pinned to a commit; pyannote loads checkpoints with pickle, "
            f"which can run code: use --diarization '{location}@<40-hex commit you reviewed on huggingface.co>'"
        )
    return location, pin


def attribute(segments: list[Segment], turns: list[Turn], source: str) -> list[Segment]:
    """Segments without a speaker take the turn label that overlaps them longest (none when
    no turn overlaps), `source` recorded as where it came from; segments the transcript
    attributed keep their speaker."""

    def speaker(segment: Segment) -> str | None:
        overlaps: dict[str, float] = {}
        for turn in turns:
            overlap = min(turn.end_s, segment.end_s) - max(turn.start_s, segment.start_s)
            if overlap > 0:
                overlaps[turn.speaker] = overlaps.get(turn.speaker, 0.0) + overlap
        return max(overlaps, key=overlaps.get) if overlaps else None

    def labelled(segment: Segment) -> Segment:
        name = speaker(segment)
        return replace(segment, speaker=name, speaker_source=source if name else None)

    return [s if s.speaker is not None else labelled(s) for s in segments]
