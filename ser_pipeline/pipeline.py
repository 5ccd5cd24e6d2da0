"""One episode through every stage: decode -> segment -> score -> warehouse rows.

Plain functions, no Prefect: the flow in `flows/` calls `process_episode` per episode and
`record_failure` when an episode fails for good.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import torch

from ser_pipeline import schema
from ser_pipeline.archive import Episode
from ser_pipeline.audio import SAMPLE_RATE, AudioError, Decoding, GrowingArray, decode
from ser_pipeline.devices import cpu_threads_beside_decoder
from ser_pipeline.diarization import attribute
from ser_pipeline.features import LogMelStream
from ser_pipeline.fingerprints import Inputs, RunConfig, episode_inputs, previous_row
from ser_pipeline.inference import Analyzer, EpisodeScores, Foreground, StreamingScorer
from ser_pipeline.scoring_version import PIPELINE_VERSION
from ser_pipeline.segmentation import Segment, Segmentation, sentence_segments, vad_segments, window_segments
from ser_pipeline.timing import StageClock
from ser_pipeline.transcripts import TranscriptError, clean_sentences, read_transcript
from ser_pipeline.warehouse import write_episode


@dataclass(frozen=True)
class EpisodeOutcome:
    show: str
    episode_id: str
    status: str  # 'ok' | 'failed'
    duration_s: float = 0.0
    segments: int = 0
    laughs: int = 0
    seconds: float = 0.0
    error: str | None = None
    warnings: tuple[str, ...] = field(default=())
    stage_seconds: dict[str, float] = field(default_factory=dict)
    older_code: bool = False  # scored again because its rows were scored by another scoring version


def segment_episode(
    episode: Episode,
    waveform: Callable[[], np.ndarray],
    duration_s: float,
    config: RunConfig,
    plan: SegmentPlan | None = None,
) -> tuple[list[Segment], list[str]]:
    """Segments by the configured strategy. `sentence` falls back to voice activity when the
    transcript is missing, unreadable or empty, and says so in the warnings. Voice activity is
    the `VadPlan`'s that heard the decode, else read from `waveform()` (see `Waveform`: the
    samples kept, else the file decoded again)."""

    def by_voice_activity() -> list[Segment]:
        return plan.finish() if isinstance(plan, VadPlan) else vad_segments(waveform())

    if config.segmentation is Segmentation.window:
        return window_segments(duration_s, config.window_s, config.hop_s), []
    if config.segmentation is Segmentation.vad or episode.transcript_path is None:
        return by_voice_activity(), []
    try:
        sentences, warnings = clean_sentences(read_transcript(episode.transcript_path), duration_s)
    except TranscriptError as error:
        return by_voice_activity(), [f"transcript unreadable ({error}); segmented by voice activity"]
    if not sentences:
        return by_voice_activity(), [*warnings, "transcript has no usable sentences; segmented by voice activity"]
    return sentence_segments(sentences), warnings


class SegmentPlan(Protocol):
    """Segments handed out as the audio arrives (windows or a transcript's sentences, known
    before decoding; voice-activity utterances, found while decoding): `hear(block)` is given each
    decoded block, `due(seconds)` gives the segments, not given before, that the first `seconds`
    hold whole; `pending_start_s` is the earliest start of those not given yet (inf when none is
    left), so a streamed waveform before it is read by no segment still to come."""

    def hear(self, block: np.ndarray) -> None: ...

    def due(self, seconds: float) -> list[Segment]: ...

    @property
    def pending_start_s(self) -> float: ...


class WindowPlan:
    def __init__(self, window_s: float, hop_s: float | None):
        self.window, self.hop, self.given = window_s, hop_s or window_s, 0

    def hear(self, block: np.ndarray) -> None:
        pass

    def due(self, seconds: float) -> list[Segment]:
        # Windows ending at or before `seconds`: full length, so the same as window_segments'.
        first, self.given = self.given, max(math.floor((seconds - self.window) / self.hop + 1e-9) + 1, self.given)
        return [
            Segment(i, Segmentation.window.value, i * self.hop, i * self.hop + self.window)
            for i in range(first, self.given)
        ]

    @property
    def pending_start_s(self) -> float:
        return self.given * self.hop  # the last, shorter window (if any) starts there or later


class SentencePlan:
    def __init__(self, sentences: list[Segment]):
        self.by_end, self.given = sorted(sentences, key=lambda s: s.end_s), 0
        self.ends = [s.end_s for s in self.by_end]
        # The earliest start among the sentences from each position of `by_end` on.
        self.later_starts = list(itertools.accumulate(reversed([s.start_s for s in self.by_end]), min))[::-1]

    def hear(self, block: np.ndarray) -> None:
        pass

    def due(self, seconds: float) -> list[Segment]:
        first, self.given = self.given, bisect.bisect_right(self.ends, seconds, lo=self.given)
        return self.by_end[first : self.given]

    @property
    def pending_start_s(self) -> float:
        return self.later_starts[self.given] if self.given < len(self.by_end) else math.inf


class VadPlan:
    """Voice-activity utterances found while decoding: silero-vad hears each block as it arrives,
    and an utterance is due once the silence after it is long enough; `finish` closes the last at
    the audio's end. The same segments as `vad_segments` of the whole waveform (tested), which
    then need not be kept."""

    def __init__(self):
        from ser_pipeline.voice_activity import SpeechTracker, VadStream

        self.stream, self.tracker = VadStream(), SpeechTracker()
        self.found: list[Segment] = []
        self.given = self.heard = 0

    def hear(self, block: np.ndarray) -> None:
        self.heard += len(block)
        self._add(self.tracker.push(self.stream.push(block)))

    def _add(self, spans) -> None:
        self.found += [
            Segment(len(self.found) + i, Segmentation.vad.value, s.start_s, s.end_s) for i, s in enumerate(spans)
        ]

    def due(self, seconds: float) -> list[Segment]:
        first = self.given
        while self.given < len(self.found) and self.found[self.given].end_s <= seconds:
            self.given += 1
        return self.found[first : self.given]

    @property
    def pending_start_s(self) -> float:
        return self.found[self.given].start_s if self.given < len(self.found) else self.tracker.pending_start_s

    def finish(self) -> list[Segment]:
        """Every utterance of the episode, once all of it has been heard."""
        self._add(self.tracker.push(self.stream.finish()))
        self._add(self.tracker.finish(self.heard))
        return self.found


class Waveform:
    """An episode's 16 kHz samples when something needs them after decoding: those kept while
    decoding, else the file decoded again, once however often it is asked for (voice activity
    after a transcript fell through, then the Whisper head for the same segments)."""

    def __init__(self, path: Path, kept: np.ndarray | None):
        self.path, self.samples = path, kept

    def __call__(self) -> np.ndarray:
        if self.samples is None:
            self.samples = decode(self.path).samples
        return self.samples


def segment_plan(episode: Episode, config: RunConfig) -> SegmentPlan:
    """The segments to score while decoding goes on: windows, a transcript's sentences, or the
    voice activity heard so far (where the transcript is missing, unreadable or empty). (A
    transcript whose every cue lies past the audio's end is the one case this cannot foresee:
    `segment_episode` decodes the file again for it.)"""
    if config.segmentation is Segmentation.window:
        return WindowPlan(config.window_s, config.hop_s)
    if config.segmentation is Segmentation.vad or episode.transcript_path is None:
        return VadPlan()
    try:
        sentences = sentence_segments(clean_sentences(read_transcript(episode.transcript_path), math.inf)[0])
    except TranscriptError:
        return VadPlan()
    return SentencePlan(sentences) if sentences else VadPlan()


@dataclass(frozen=True)
class DecodedEpisode:
    logmel: torch.Tensor
    samples: np.ndarray | None  # 16 kHz mono, kept only when something reads the waveform
    duration_s: float
    warnings: tuple[str, ...]


def decode_episode(
    path: Path,
    analyzer: Analyzer,
    keep_samples: bool,
    clock: StageClock,
    on_frames: Callable[[torch.Tensor, np.ndarray, Foreground], None] = lambda frames, block, foreground: None,
) -> DecodedEpisode:
    """One streaming pass: each decoded 16 kHz block goes straight into the log-mel frames,
    so an episode costs its frames (25 MB an hour) and not its waveform (230 MB an hour)
    unless `keep_samples`; `on_frames` sees the frames so far and the block after each block,
    with a `Foreground` for long work (the decoder held, torch on every thread). Decoding and
    resampling run in a thread beside the log-mel pass and `on_frames`; the "decode" stage is
    the time spent waiting for them."""
    decoding = Decoding(path)
    features = LogMelStream(analyzer.front_end, analyzer.device, decoding.expected_samples)
    samples = GrowingArray(decoding.expected_samples) if keep_samples else None
    blocks = decoding.blocks(background=True)
    with cpu_threads_beside_decoder(analyzer.device) as every_thread:

        @contextlib.contextmanager
        def foreground() -> Iterator[None]:
            with blocks.held(), every_thread():
                yield

        try:
            while True:
                with clock.stage("decode"):
                    block = next(blocks, None)
                if block is None:
                    break
                if samples is not None:
                    samples.append(block)
                with clock.stage("features"):
                    features.push(block)
                on_frames(features.frames_so_far(), block, foreground)
        finally:
            blocks.close()
        with clock.stage("features"):
            logmel = features.finish()
    return DecodedEpisode(
        logmel, samples.array() if samples is not None else None, decoding.samples / SAMPLE_RATE, decoding.warnings
    )


def _episode_row(episode: Episode, config: RunConfig, run_id: str, models: dict[str, str], **values) -> pa.Table:
    row = {
        "show": episode.show,
        "episode_id": episode.episode_id,
        "title": episode.title,
        "published": episode.published,
        "audio_path": str(episode.audio_path) if episode.audio_path else None,
        "audio_sha256": None,
        "duration_s": None,
        "segmentation": config.describe(),
        "status": "ok",
        "error": None,
        "models": json.dumps(models, sort_keys=True),
        "pipeline_version": PIPELINE_VERSION,
        "run_id": run_id,
        "processed_at": datetime.now(UTC),
        **values,
    }
    return pa.Table.from_pylist([row], schema=schema.EPISODES)


def _segment_table(
    episode: Episode, segments: list[Segment], scores: EpisodeScores, models: dict[str, str]
) -> pa.Table:
    n = len(segments)
    columns = {
        "show": [episode.show] * n,
        "episode_id": [episode.episode_id] * n,
        "segment_id": [s.segment_id for s in segments],
        "kind": [s.kind for s in segments],
        "start_s": [s.start_s for s in segments],
        "end_s": [s.end_s for s in segments],
        "speaker": [s.speaker for s in segments],
        "speaker_source": [s.speaker_source for s in segments],
        "text": [s.text for s in segments],
        **{name: scores.columns[name] for name in schema.SCORE_COLUMNS},
        "emotion_model": [models["emotion"]] * n,
        "dims_model": [models["dims"]] * n,
        "laughter_model": [models["laughter"]] * n,
    }
    return pa.Table.from_pydict(columns, schema=schema.SEGMENTS)


def _events_table(episode: Episode, scores: EpisodeScores, model: str) -> pa.Table:
    rows = [
        {
            "show": episode.show,
            "episode_id": episode.episode_id,
            "start_s": e.start_s,
            "end_s": e.end_s,
            "duration_s": e.duration_s,
            "peak_prob": e.peak_prob,
            "mean_prob": e.mean_prob,
            "model": model,
        }
        for e in scores.events
    ]
    return pa.Table.from_pylist(rows, schema=schema.LAUGHTER_EVENTS)


def record_failure(
    episode: Episode, config: RunConfig, run_id: str, models: dict[str, str], error: str, inputs: Inputs | None = None
) -> EpisodeOutcome:
    """Record an episode as failed; its segment and event files are emptied so tables agree.
    With `inputs` (a permanent failure: the file itself is bad) an unchanged re-run skips it;
    without (a transient failure) the next run tries again."""
    one_line = " ".join(error.split())[:500]
    recorded = inputs.columns() if inputs else {}
    write_episode(
        config.warehouse,
        episode.show,
        episode.episode_id,
        {
            "segments": schema.SEGMENTS.empty_table(),
            "laughter_events": schema.LAUGHTER_EVENTS.empty_table(),
            "episodes": _episode_row(episode, config, run_id, models, status="failed", error=one_line, **recorded),
        },
    )
    return EpisodeOutcome(episode.show, episode.episode_id, "failed", error=one_line, warnings=episode.warnings)


def process_episode(
    episode: Episode, config: RunConfig, analyzer: Analyzer, run_id: str, clock: StageClock | None = None
) -> EpisodeOutcome:
    """Run one episode through every stage and write its rows; `clock` times the stages (and
    its listener hears each one start). An episode whose inputs, models and settings are those
    of its recorded rows is skipped (unless `config.reprocess`). Undecodable audio is recorded
    as a failed episode; anything else is raised so that the caller may retry it."""
    began = time.perf_counter()
    clock = clock or StageClock()
    models = analyzer.models.ids
    with clock.stage("check"):
        previous = previous_row(config.warehouse, episode)
        inputs = episode_inputs(episode, config, analyzer.models.fingerprints, previous)
    if previous and previous["fingerprint"] == inputs.fingerprint and not config.reprocess:
        return EpisodeOutcome(
            episode.show, episode.episode_id, "skipped", previous["duration_s"] or 0.0, stage_seconds=clock.seconds
        )
    older_code = bool(previous) and previous["pipeline_version"] != PIPELINE_VERSION
    if episode.problem:
        return record_failure(episode, config, run_id, models, episode.problem, inputs)
    plan = segment_plan(episode, config)
    # With segments handed out as the audio arrives, the Whisper head describes them on the way,
    # so the waveform need not be kept (see StreamingScorer).
    streamed = analyzer.models.describes_while_decoding
    scorer = StreamingScorer(analyzer, stream_samples=streamed)
    fps = analyzer.front_end.config.frames_per_second

    def score_so_far(frames: torch.Tensor, block: np.ndarray, foreground: Foreground) -> None:
        with clock.stage("segment"):
            plan.hear(block)
        scorer.update(frames, plan.due(len(frames) / fps), clock, block, plan.pending_start_s, foreground)

    keep_samples = analyzer.models.needs_samples and not streamed
    try:
        audio = decode_episode(episode.audio_path, analyzer, keep_samples, clock, score_so_far)
    except AudioError as error:  # no retry can mend it: recorded as failed at once
        return record_failure(episode, config, run_id, models, str(error), inputs)
    waveform = Waveform(episode.audio_path, audio.samples)
    with clock.stage("segment"):
        segments, warnings = segment_episode(episode, waveform, audio.duration_s, config, plan)
    if not segments:
        warnings.append("no speech found (silence?): no segments")
    diarizer = analyzer.models.diarizer
    sentences = bool(segments) and segments[0].kind == Segmentation.sentence.value  # each one speaker's
    if diarizer is not None and any(s.speaker is None for s in segments) and (sentences or not diarizer.sentences_only):
        # Utterances (voice activity, sentences) are the speech regions; windows are not. Laughs
        # are cut out of voice activity (a sentence is one speaker's, laugh or not).
        regions = None if config.segmentation is Segmentation.window else [(s.start_s, s.end_s) for s in segments]
        with clock.stage("laughter"):
            laughs = [] if sentences else scorer.laughter_events(audio.logmel, waveform())
        with clock.stage("diarize"):
            turns = diarizer.turns(
                waveform(), regions, utterances=sentences, exclude=[(e.start_s, e.end_s) for e in laughs]
            )
            segments = attribute(segments, turns, diarizer.label_source)
    samples = audio.samples
    if streamed and not scorer.holds_samples_for(segments):  # the plan fell through: the whole waveform
        with clock.stage("decode"):
            samples = waveform()
    scores = scorer.finish(audio.logmel, samples, segments, clock)
    warnings = [*episode.warnings, *audio.warnings, *warnings]
    with clock.stage("write"):
        write_episode(
            config.warehouse,
            episode.show,
            episode.episode_id,
            {
                "segments": _segment_table(episode, segments, scores, models),
                "laughter_events": _events_table(episode, scores, models["laughter"]),
                "episodes": _episode_row(
                    episode,
                    config,
                    run_id,
                    models,
                    **inputs.columns(),
                    duration_s=audio.duration_s,
                    error="; ".join(warnings) or None,
                ),
            },
        )
    return EpisodeOutcome(
        episode.show,
        episode.episode_id,
        "ok",
        audio.duration_s,
        len(segments),
        len(scores.events),
        time.perf_counter() - began,
        warnings=tuple(warnings),
        stage_seconds=dict(clock.seconds),
        older_code=older_code,
    )
