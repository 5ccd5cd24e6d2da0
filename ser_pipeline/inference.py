"""Batched inference: one decode and one log-mel pass feed the emotion and laughter networks.

`Analyzer.emotion_batch(features, lengths)` and `Analyzer.laughter_frames(logmel)` are the
tensor entry points; `score(logmel, samples, segments)` scores an episode whose log-mel was
computed while decoding; `analyze(samples, segments)` and `analyze_file(path)` are
conveniences built on them, with the same results (batches are exact, see `architectures`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ser_pipeline.audio import SAMPLE_RATE, GrowingArray, SampleTail, decode
from ser_pipeline.devices import autocast_for
from ser_pipeline.episode_steps import (
    Fused,
    Readings,
    calibrate_episode_dims,
    fuse_with_speaker_branch,
    read_with_speaker_context,
)
from ser_pipeline.features import (
    FrontEndConfig,
    LogMel,
    frame_span,
    fused_features,
    utterance_statistics,
    voiced_span,
)
from ser_pipeline.gillick import GILLICK_FPS, gillick_features, window_probabilities
from ser_pipeline.laughter import LaughterEvent, detect_events, smooth
from ser_pipeline.model_loading import load_models
from ser_pipeline.registry import Registry
from ser_pipeline.schema import (
    DIMENSIONS,
    EMOTION_PROB_COLUMNS,
    EMOTIONS,
    SENTIMENT_PROB_COLUMNS,
    SENTIMENTS,
)
from ser_pipeline.segmentation import Segment
from ser_pipeline.timing import StageClock

# A context for long work done while decoding goes on (the decoder held, torch on every core).
Foreground = Callable[[], AbstractContextManager[None]]


@dataclass(frozen=True)
class EpisodeScores:
    """Per-segment scores (column name -> array, one entry per segment) and laughter events."""

    columns: dict[str, np.ndarray]
    events: list[LaughterEvent]
    laughter_frame_probs: np.ndarray


@dataclass
class SegmentScores:
    """What the feature models give of each segment alone, one row per segment, before the
    episode-level steps (speaker context, the speaker branch, calibration) join in."""

    emotion: np.ndarray  # (segments, 7) probabilities; zeros where a waveform model gives them
    sentiment: np.ndarray  # (segments, 3) probabilities
    dims: np.ndarray  # (segments, 3) valence, arousal, dominance (uncalibrated)
    statistics: np.ndarray  # (segments, n) utterance statistics for the speaker branch (n = 0 without one)
    descriptions: np.ndarray  # (segments, d) the network's description, for speaker context (d = 0 without)

    @classmethod
    def zeros(cls, segments: int, statistics_width: int, description_width: int) -> SegmentScores:
        return cls(
            np.zeros((segments, len(EMOTIONS)), np.float32),
            np.zeros((segments, len(SENTIMENTS)), np.float32),
            np.zeros((segments, len(DIMENSIONS)), np.float32),
            np.zeros((segments, statistics_width), np.float32),
            np.zeros((segments, description_width), np.float32),
        )

    def arrays(self) -> tuple[np.ndarray, ...]:
        return (self.emotion, self.sentiment, self.dims, self.statistics, self.descriptions)

    def row(self, index: int) -> SegmentScores:
        return SegmentScores(*(values[index : index + 1] for values in self.arrays()))

    @classmethod
    def stack(cls, rows: list[SegmentScores], like: SegmentScores) -> SegmentScores:
        """Rows in order (`like`: an empty result of the same widths, for no rows)."""
        parts = list(zip(*(r.arrays() for r in rows))) if rows else [[v] for v in like.arrays()]
        return cls(*(np.concatenate(p).astype(np.float32) for p in parts))


class Analyzer:
    """Scores episodes and files with the models of one configuration (`model_loading`): each
    segment alone in batches (`score_segments`), the laughter frames (`laughter_frames`), then
    the episode-level steps (`episode_readings`, see `episode_steps`)."""

    def __init__(
        self,
        device: str = "auto",
        emotion_model: str | None = None,
        dims_model: str | None = None,
        laughter_model: str | None = None,
        operating_point: str = "balanced",
        diarization: str | None = None,
        episode_reading: bool = True,
        registry: Registry | None = None,
        max_batch_frames: int = 64 * 300,
        laughter_chunk_frames: int = 30_000,
    ):
        self.models = load_models(
            registry, device, emotion_model, dims_model, laughter_model, operating_point, diarization, episode_reading
        )
        self.device = self.models.device
        self.front_end = LogMel(FrontEndConfig()).to(self.device)
        self.max_batch_frames = max_batch_frames
        self.laughter_chunk_frames = laughter_chunk_frames

    @torch.inference_mode()
    def emotion_batch(self, features: torch.Tensor, lengths: torch.Tensor) -> dict[str, np.ndarray]:
        """Fused features (batch, time, n_features) + lengths -> what the feature models give of
        each utterance alone: emotion and sentiment probabilities and dims (see `episode_steps.HeadReading`),
        and with speaker context the network's `description` of each."""
        models = self.models
        features, lengths = features.to(self.device), lengths.to(self.device)
        result = {}
        with autocast_for(self.device):
            if models.emotion_net is not None:
                description = models.emotion_net.describe(features, lengths)
                result.update(models.heads(models.emotion_net.heads(description)))
                if models.speaker_context:
                    result["description"] = description.float().cpu().numpy()
            if models.dims_net is not None:
                result["dims"] = models.dims_net(features, lengths)["dims"].float().cpu().numpy()
        return result

    @torch.inference_mode()
    def laughter_frames(self, logmel: torch.Tensor, first: int = 0) -> np.ndarray:
        """Laughter probability of the frames from `first` on of an episode's log-mel (frames, n_mels).

        Long episodes are scored in chunks that overlap by the network's receptive field, so
        the result equals one pass over the whole episode while memory stays bounded.
        """
        chunks = [
            self.laughter_chunk(logmel, start, min(start + self.laughter_chunk_frames, len(logmel)))
            for start in range(first, len(logmel), self.laughter_chunk_frames)
        ]
        return np.concatenate(chunks) if chunks else np.empty(0, np.float32)

    def laughter_chunk(self, logmel: torch.Tensor, first: int, last: int) -> np.ndarray:
        """Probabilities of frames [first, last), read with the receptive field on both sides."""
        config = self.models.laughter_net.config
        begin, end = max(first - config.receptive_frames, 0), min(last + config.receptive_frames, len(logmel))
        begin -= begin % config.stride  # the network's strided frames fall where one pass puts them
        with torch.inference_mode(), autocast_for(self.device):
            logits = self.models.laughter_net(logmel[begin:end].to(self.device)[None])[0]
        return torch.sigmoid(logits.float()).cpu().numpy()[first - begin : last - begin]

    def laughter_probabilities(self, samples: np.ndarray, logmel: torch.Tensor) -> tuple[np.ndarray, float]:
        """Laughter probability per frame and the frames' rate: our detector reads the shared
        log-mel frames; the Gillick ResNet reads its own 8 kHz features."""
        if self.models.laughter_reads_waveform:
            stride = int(self.models.laughter_spec.options.get("stride", 1))
            probs = window_probabilities(self.models.laughter_net, gillick_features(samples), self.device, stride)
            return probs, GILLICK_FPS
        return self.laughter_frames(logmel), self.front_end.config.frames_per_second

    @staticmethod
    def _voiced(logmel: torch.Tensor, first: int, last: int) -> tuple[int, int]:
        start, stop = voiced_span(logmel[first:last])
        return first + start, first + stop

    def _length_buckets(self, spans: list[tuple[int, int]]) -> list[list[int]]:
        """Segment indices grouped by similar length (sorted), each group under the frame budget."""
        order = sorted(range(len(spans)), key=lambda i: spans[i][1] - spans[i][0])
        buckets, current = [], []
        for index in order:
            length = spans[index][1] - spans[index][0]
            if current and (len(current) + 1) * length > self.max_batch_frames:
                buckets.append(current)
                current = []
            current.append(index)
        return buckets + [current] if current else buckets

    def analyze(self, samples: np.ndarray, segments: list[Segment], clock: StageClock | None = None) -> EpisodeScores:
        """Score every segment of one decoded episode (16 kHz mono); `clock` times the stages."""
        clock = clock or StageClock()
        with clock.stage("features"):
            logmel = self.front_end.episode(samples, self.device)
        return self.score(logmel, samples, segments, clock)

    def score(
        self, logmel: torch.Tensor, samples: np.ndarray | None, segments: list[Segment], clock: StageClock | None = None
    ) -> EpisodeScores:
        """Score every segment from the episode's log-mel frames; `samples` (16 kHz mono) may be
        None unless `needs_samples`."""
        return StreamingScorer(self).finish(logmel, samples, segments, clock)

    def episode_readings(self, scores: SegmentScores, speakers: list[str | None]) -> Readings:
        """The episode-level steps on each segment's scores alone (`episode_steps`): speaker
        context, the speaker branch, the dims calibration."""
        models = self.models
        readings = Readings(scores.emotion, scores.sentiment, scores.dims)
        if models.speaker_context:
            network = models.emotion_net
            readings = read_with_speaker_context(
                network.heads,
                models.heads,
                network.config.context_min_segments,
                readings,
                scores.descriptions,
                speakers,
                self.device,
            )
        fused = Fused(readings, [])
        if models.branch is not None:
            fused = fuse_with_speaker_branch(models.branch, readings, scores.statistics, speakers, self.device)
        dims = calibrate_episode_dims(fused.readings.dims, models.dims_calibration, fused.dims_rows)
        return replace(fused.readings, dims=dims)

    def empty_scores(self, segments: int = 0) -> SegmentScores:
        """`SegmentScores` of zeros with this analyzer's widths."""
        return SegmentScores.zeros(segments, self.models.statistics_width, self.models.description_width)

    def score_segments(self, logmel: torch.Tensor, segments: list[Segment], fps: float) -> SegmentScores:
        """Emotion and sentiment probabilities and dims of each segment alone (zeros where a
        waveform model gives them), for the speaker branch each segment's utterance statistics,
        and for speaker context the network's description of each (see `with_speaker_context`)."""
        # Each segment is scored on its voiced part: leading and trailing pauses would otherwise
        # weigh on the per-utterance normalisation, and a clip cut loosely or tightly around the
        # same speech should score the same.
        scores = self.empty_scores(len(segments))
        if not self.models.reads_features:
            return scores
        spans = [self._voiced(logmel, *frame_span(s.start_s, s.end_s, fps, len(logmel))) for s in segments]
        n_mfcc = self.front_end.config.n_mfcc
        if self.models.branch is not None:
            # Every segment's: a diarizer may name its speaker after it was scored (`finish`).
            for i, span in enumerate(spans):
                scores.statistics[i] = utterance_statistics(logmel[slice(*span)], n_mfcc).numpy()
        outputs = {
            "emotion": scores.emotion,
            "sentiment": scores.sentiment,
            "dims": scores.dims,
            "description": scores.descriptions,
        }
        for bucket in self._length_buckets(spans):
            pieces = [logmel[slice(*spans[i])] for i in bucket]
            lengths = torch.tensor([len(p) for p in pieces])
            features = fused_features(torch.nn.utils.rnn.pad_sequence(pieces, batch_first=True).to(self.device), n_mfcc)
            out = self.emotion_batch(features, lengths)
            for name, values in outputs.items():
                if name in out:
                    values[bucket] = out[name]
        return scores

    def analyze_clips(self, clips: list[tuple[np.ndarray, list[Segment]]]) -> list[EpisodeScores]:
        """Several decoded clips (16 kHz mono, each with its segments) scored together: where the
        Whisper head is the only model reading the waveform, the descriptions of every clip's
        segments are taken in one encoder batch; the rest is each clip's own, as `analyze` scores
        it (the same numbers, up to the batch's rounding under bfloat16)."""
        if not self.models.describes_while_decoding:
            return [self.analyze(samples, segments) for samples, segments in clips]
        from ser_pipeline.whisper_emotion import sample_spans

        stretches = [samples[a:b] for samples, segments in clips for a, b in sample_spans(segments)]
        descriptions = self.models.waveform_emotion.describe(stretches)
        results, first = [], 0
        for samples, segments in clips:
            scorer = StreamingScorer(self, stream_samples=True)
            scorer.take_descriptions(segments, descriptions[first : first + len(segments)])
            first += len(segments)
            results.append(scorer.finish(self.front_end.episode(samples, self.device), None, segments))
        return results

    def analyze_file(self, path: Path) -> EpisodeScores:
        """A whole file as one segment."""
        return self.analyze_whole(decode(path).samples)

    def analyze_whole(self, samples: np.ndarray) -> EpisodeScores:
        """Decoded audio (16 kHz mono) as one segment: a clip read alone, as `predict` reads a file."""
        return self.analyze(samples, [Segment(0, "window", 0.0, len(samples) / SAMPLE_RATE)])


class StreamingScorer:
    """Scores an episode while its log-mel frames arrive, so that the models run during
    decoding: `update(frames_so_far, new_segments)` scores the segments whose frames have all
    arrived and runs the laughter detector on chunks whose context has arrived; `finish` scores
    the rest. The result equals `Analyzer.score` on the whole episode: frames already emitted
    never change, and segments are looked up by their time span, so one cut differently at the
    end (the last window, a clipped sentence) is scored again."""

    def __init__(self, analyzer: Analyzer, stream_samples: bool = False):
        """`stream_samples` (only where `models.describes_while_decoding`): `update` is given
        each decoded block, and the Whisper head describes segments as their audio arrives,
        keeping only the samples that segments still to come may read; `finish` needs none,
        unless `holds_samples_for` its segments is false (then it is given them all)."""
        self.analyzer = analyzer
        self.fps = analyzer.front_end.config.frames_per_second
        self.scored: dict[tuple[float, float], SegmentScores] = {}  # one row each
        self.ready: dict[tuple[float, float], Segment] = {}
        self.waiting: list[Segment] = []
        self.laughter = GrowingArray(0)  # probabilities of the frames scored so far
        self.laughter_done: tuple[np.ndarray, float] | None = None  # every frame's, once the episode is decoded
        self.tail = SampleTail() if stream_samples else None
        self.to_describe: dict[tuple[float, float], Segment] = {}
        self.described: dict[tuple[float, float], np.ndarray] = {}  # the Whisper head's descriptions

    def update(
        self,
        logmel: torch.Tensor,
        new_segments: list[Segment],
        clock: StageClock,
        block: np.ndarray | None = None,
        pending_start_s: float = 0.0,
        foreground: Foreground = contextlib.nullcontext,
    ) -> None:
        """`new_segments`: segments not given before whose time span the frames so far cover;
        `block`: the samples decoded since the last call; `pending_start_s`: the earliest start of
        the segments still to be given (both read only with `stream_samples`); `foreground`: where
        the Whisper head describes segments (the decoder would otherwise take a core from it)."""
        frames = len(logmel)
        self.waiting += new_segments
        # Complete: every frame a segment covers has arrived (one spare frame for rounding).
        complete = [s for s in self.waiting if math.ceil(s.end_s * self.fps) + 1 < frames]
        self.waiting = [s for s in self.waiting if math.ceil(s.end_s * self.fps) + 1 >= frames]
        self.ready.update({(s.start_s, s.end_s): s for s in complete})
        if sum(self._frames(s) for s in self.ready.values()) >= self.analyzer.max_batch_frames:
            with clock.stage("emotion"):
                self._score_ready(logmel)
        if self.tail is not None:
            self._describe_so_far(complete, block, pending_start_s, clock, foreground)
        if self.analyzer.models.laughter_reads_waveform:  # the Gillick ResNet reads the waveform in `finish`
            return
        context, chunk = self.analyzer.models.laughter_net.config.receptive_frames, self.analyzer.laughter_chunk_frames
        done = self.laughter.rows
        if frames - context - done >= chunk:
            with clock.stage("laughter"):
                self.laughter.append(self.analyzer.laughter_chunk(logmel, done, frames - context))

    def _frames(self, segment: Segment) -> int:
        return max(int((segment.end_s - segment.start_s) * self.fps), 1)

    def _describe_so_far(
        self,
        complete: list[Segment],
        block: np.ndarray | None,
        pending_start_s: float,
        clock: StageClock,
        foreground: Foreground,
    ) -> None:
        """Whisper descriptions of the complete segments, `DESCRIBE_MEL_FRAMES` of them at a time; then
        the samples before every segment still to be described are dropped."""
        from ser_pipeline.whisper_emotion import DESCRIBE_MEL_FRAMES

        if block is not None:
            self.tail.append(block)
        self.to_describe.update({(s.start_s, s.end_s): s for s in complete})
        if sum(self._frames(s) for s in self.to_describe.values()) >= DESCRIBE_MEL_FRAMES:
            with clock.stage("emotion"), foreground():
                self._describe(list(self.to_describe.values()))
            self.to_describe.clear()
        needed = [s.start_s for s in (*self.waiting, *self.to_describe.values())]
        keep_from = min([pending_start_s, self.tail.end / SAMPLE_RATE, *needed])
        self.tail.drop_before(int(keep_from * SAMPLE_RATE))

    def _describe(self, segments: list[Segment]) -> None:
        from ser_pipeline.whisper_emotion import sample_spans

        stretches = [self.tail.read(first, last) for first, last in sample_spans(segments)]
        self.take_descriptions(segments, self.analyzer.models.waveform_emotion.describe(stretches))

    def take_descriptions(self, segments: list[Segment], descriptions: np.ndarray) -> None:
        """The Whisper head's descriptions of `segments`, taken elsewhere (several clips in one batch)."""
        for segment, description in zip(segments, descriptions, strict=True):
            self.described[(segment.start_s, segment.end_s)] = description

    def holds_samples_for(self, segments: list[Segment]) -> bool:
        """Whether every segment not yet described can still be read from the samples held (not
        so when segmentation fell back from the plan to voice activity)."""
        undescribed = [s for s in segments if (s.start_s, s.end_s) not in self.described]
        return self.tail is None or all(int(s.start_s * SAMPLE_RATE) >= self.tail.start for s in undescribed)

    def _streamed_descriptions(self, segments: list[Segment]) -> np.ndarray:
        """Every segment's description: those taken while decoding, the rest (the last ones,
        a segment cut differently at the end) from the samples still held."""
        from ser_pipeline.whisper_emotion import N_DESCRIPTION

        missing = {(s.start_s, s.end_s): s for s in segments if (s.start_s, s.end_s) not in self.described}
        self._describe(list(missing.values()))
        rows = [self.described[(s.start_s, s.end_s)] for s in segments]
        return np.stack(rows) if rows else np.zeros((0, N_DESCRIPTION), np.float32)

    def _score_ready(self, logmel: torch.Tensor) -> None:
        segments = list(self.ready.values())
        scores = self.analyzer.score_segments(logmel, segments, self.fps)
        for index, segment in enumerate(segments):
            self.scored[(segment.start_s, segment.end_s)] = scores.row(index)
        self.ready.clear()

    def episode_laughter(self, logmel: torch.Tensor, samples: np.ndarray | None) -> tuple[np.ndarray, float]:
        """The laughter detector's probabilities for every frame of the finished episode, and their
        frames per second (worked out once: `finish` reads them again)."""
        if self.laughter_done is None:
            analyzer = self.analyzer
            if analyzer.models.laughter_reads_waveform:
                self.laughter_done = analyzer.laughter_probabilities(samples, logmel)
            else:
                self.laughter.append(analyzer.laughter_frames(logmel, first=self.laughter.rows))
                self.laughter_done = self.laughter.array(), self.fps
        return self.laughter_done

    def laughter_events(self, logmel: torch.Tensor, samples: np.ndarray | None) -> list[LaughterEvent]:
        """The finished episode's laughs (before `finish`: the diarizer leaves them out)."""
        return detect_events(*self.episode_laughter(logmel, samples), self.analyzer.models.operating_point)

    def finish(
        self, logmel: torch.Tensor, samples: np.ndarray | None, segments: list[Segment], clock: StageClock | None = None
    ) -> EpisodeScores:
        analyzer, clock = self.analyzer, clock or StageClock()
        with clock.stage("emotion"):
            self.ready = {(s.start_s, s.end_s): s for s in segments if (s.start_s, s.end_s) not in self.scored}
            self._score_ready(logmel)
            scores = SegmentScores.stack([self.scored[(s.start_s, s.end_s)] for s in segments], analyzer.empty_scores())
            readings = analyzer.episode_readings(scores, [s.speaker for s in segments])
        emotion, sentiment, dims = readings.emotion, readings.sentiment, readings.dims
        models = analyzer.models
        if models.waveform_emotion is not None:
            with clock.stage("emotion"):
                if self.tail is not None and samples is None:
                    descriptions = self._streamed_descriptions(segments)
                    speakers, kinds = [s.speaker for s in segments], [s.kind for s in segments]
                    emotion, sentiment = models.waveform_emotion.probabilities(descriptions, speakers, kinds)
                else:
                    emotion, sentiment = models.waveform_emotion.score(samples, segments)
                if models.dims_from_emotion:
                    dims = models.waveform_emotion.dims(emotion)
        if models.waveform_dims is not None:
            with clock.stage("dims"):
                dims = models.waveform_dims.score(samples, segments)
        with clock.stage("laughter"):
            frame_probs, laughter_fps = self.episode_laughter(logmel, samples)
        with clock.stage("events"):
            point = models.operating_point
            smoothed = smooth(frame_probs, laughter_fps, point.smooth_s)
            laughter_spans = [frame_span(s.start_s, s.end_s, laughter_fps, len(frame_probs)) for s in segments]
            laughter = np.array([smoothed[a:b].max() for a, b in laughter_spans], dtype=np.float32)
            events = detect_events(frame_probs, laughter_fps, point)
        columns = {
            "emotion": np.array([EMOTIONS[i] for i in emotion.argmax(1)], dtype=object),
            **{name: emotion[:, i] for i, name in enumerate(EMOTION_PROB_COLUMNS)},
            "sentiment": np.array([SENTIMENTS[i] for i in sentiment.argmax(1)], dtype=object),
            **{name: sentiment[:, i] for i, name in enumerate(SENTIMENT_PROB_COLUMNS)},
            **{name: dims[:, i] for i, name in enumerate(DIMENSIONS)},
            "laughter_prob": laughter,
        }
        return EpisodeScores(columns, events, frame_probs)
