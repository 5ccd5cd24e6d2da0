"""Emotion from the frozen Whisper tiny.en encoder (`whisper_encoder`) and a linear head trained by
this project (`training/whisper_head.py`).

Each segment is described by the mean and standard deviation of every encoder layer's frames
(5 layers x 384 x 2 = 3840 numbers). Two linear readings of that description, both in one
`WhisperEmotionHead` file (registry architecture `whisper-emotion-head`):

- alone: the description standardised by the training clips' mean and spread;
- speaker: the description z-scored over its speaker's segments, where the speaker is known and
  heard in at least `min_segments` of them (an episode with a speaker-labelled transcript, or
  `predict --speaker-from`): how this utterance departs from that voice's usual sound.

An utterance (a sentence or a voice-activity segment, not a fixed window) not read against its
speaker (none named, or heard too seldom) in a recording of at least `min_segments` segments (an
episode without a transcript, a request of several utterances) is read both alone and, with the
`speaker` classifier, against the whole recording (its description z-scored over all the
recording's segments: how it departs from the recording's usual sound); its probabilities are the
mean of the two. Chosen on development episodes (docs/evaluation.md): 7-class UAR +0.03 to +0.12
over reading such utterances alone; on 3 s windows the gain was within its interval, so windows
are read alone. A clip read by itself (`predict`) is one segment and is read alone.

Emotion probabilities are a softmax of the head's logits; sentiment is their sum over each
sentiment's emotions; valence, arousal and dominance are the emotion probabilities through the
emotion-to-VAD lexicon (each emotion's coordinates, weighted by its probability), which the
head file carries (`lexicon`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ser_pipeline.architectures import MetadataConfig
from ser_pipeline.audio import SAMPLE_RATE
from ser_pipeline.devices import matmul_autocast_for
from ser_pipeline.schema import EMOTIONS, SENTIMENT_OF_EMOTION
from ser_pipeline.segmentation import Segment, Segmentation
from ser_pipeline.whisper_encoder import (
    LAYERS,
    MAX_FRAMES,
    SAMPLES_PER_FRAME,
    WIDTH,
    encoded_frames,
    load_encoder,
    whisper_logmel,
)

N_DESCRIPTION = (LAYERS + 1) * WIDTH * 2
MIN_SAMPLES = SAMPLE_RATE // 5  # a shorter segment is padded with silence to 0.2 s (10 encoder frames)
PIECE_SAMPLES = MAX_FRAMES * SAMPLES_PER_FRAME  # 30 s: the encoder's longest input
BATCH_MEL_FRAMES = 12_000  # mel frames (10 ms) encoded in one batch: 2 minutes of audio
# While an episode is decoded, its segments are described this many mel frames at a time (8
# minutes, four batches) rather than a batch at a time: measured on an hour on 2 cores (AMD
# EPYC), the emotion stage 15.2 -> 13.0 s by windows and 12.4 -> 9.3 s by voice activity, for
# 85-170 MB more peak memory (the waiting segments' samples and their copies).
DESCRIBE_MEL_FRAMES = 4 * BATCH_MEL_FRAMES


@dataclass(frozen=True)
class WhisperHeadConfig(MetadataConfig):
    n_features: int = N_DESCRIPTION
    n_emotions: int = len(EMOTIONS)
    min_segments: int = 8  # a speaker heard in fewer segments is read alone


class WhisperEmotionHead(nn.Module):
    """Two linear classifiers of a segment's Whisper description: `alone` (after the training
    clips' standardisation) and `speaker` (of the description z-scored within its speaker)."""

    def __init__(self, config: WhisperHeadConfig = WhisperHeadConfig()):
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.zeros(config.n_features))
        self.register_buffer("scale", torch.ones(config.n_features))
        self.alone = nn.Linear(config.n_features, config.n_emotions)
        self.speaker = nn.Linear(config.n_features, config.n_emotions)
        self.register_buffer("lexicon", torch.zeros(config.n_emotions, 3))  # valence, arousal, dominance

    def forward(self, descriptions: torch.Tensor) -> torch.Tensor:
        """(segments, n_features) -> emotion logits of each segment read alone."""
        return self.alone((descriptions - self.mean) / self.scale)


def _pieces(samples: np.ndarray) -> list[np.ndarray]:
    """At most 30 s each; a short clip padded with silence to 0.2 s; a sliver after a long piece dropped."""
    if len(samples) < MIN_SAMPLES:
        samples = np.pad(samples, (0, MIN_SAMPLES - len(samples)))
    starts = range(0, len(samples), PIECE_SAMPLES)
    return [samples[s : s + PIECE_SAMPLES] for s in starts if s == 0 or len(samples) - s >= MIN_SAMPLES]


@torch.inference_mode()
def describe_many(
    encoder: nn.Module,
    clips: list[np.ndarray],
    device: torch.device,
    max_batch_frames: int = BATCH_MEL_FRAMES,
    fast: bool = True,
) -> np.ndarray:
    """(clips, n_features): each clip's layer means and standard deviations over its encoder frames
    (a clip over 30 s: its pieces' descriptions averaged by their frames). Pieces of similar
    length are encoded together, padded, under `max_batch_frames` mel frames a batch; the
    padding changes nothing (`WhisperEncoder`). `fast`: in the device's fast precision
    (`devices.matmul_autocast_for`); else float32 throughout, as the head is trained."""
    pieces = [(index, piece) for index, clip in enumerate(clips) for piece in _pieces(np.asarray(clip, np.float32))]
    owner = torch.tensor([index for index, _ in pieces])
    totals = torch.zeros(len(clips), N_DESCRIPTION, dtype=torch.float64)
    weights = torch.zeros(len(clips), dtype=torch.float64)
    mel_frames = [len(piece) // 160 for _, piece in pieces]  # whisper_logmel's frames
    order = sorted(range(len(pieces)), key=lambda i: mel_frames[i])
    batch: list[int] = []
    for position, index in enumerate(order):
        batch.append(index)
        following = order[position + 1] if position + 1 < len(order) else None
        if following is None or (len(batch) + 1) * mel_frames[following] > max_batch_frames:
            mels = _logmels([pieces[i][1] for i in batch], device)  # a batch's at a time: memory stays bounded
            lengths = torch.tensor([mel.shape[1] for mel in mels])
            padded = torch.stack([F.pad(mel, (0, int(lengths.max()) - mel.shape[1])) for mel in mels])
            with matmul_autocast_for(device) if fast else contextlib.nullcontext():
                layers = encoder(padded, lengths.to(device))
            frames = encoded_frames(lengths)
            stats = torch.cat([_mean_and_spread(x.float(), frames.to(x.device)) for x in layers], 1).double().cpu()
            totals.index_add_(0, owner[batch], frames[:, None].double() * stats)
            weights.index_add_(0, owner[batch], frames.double())
            batch = []
    return (totals / weights[:, None]).float().numpy()


def _logmels(pieces: list[np.ndarray], device: torch.device) -> list[torch.Tensor]:
    """Each piece's `whisper_logmel`, pieces of one length 64 at a time (windows all have one)."""
    mels: list[torch.Tensor | None] = [None] * len(pieces)
    by_length: dict[int, list[int]] = {}
    for index, piece in enumerate(pieces):
        by_length.setdefault(len(piece), []).append(index)
    for same in by_length.values():
        for first in range(0, len(same), 64):
            indices = same[first : first + 64]
            audio = torch.from_numpy(np.stack([pieces[i] for i in indices])).to(device)
            for index, mel in zip(indices, whisper_logmel(audio), strict=True):
                mels[index] = mel
    return mels


def _mean_and_spread(x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """(batch, time, width) outputs -> (batch, 2 * width): mean and standard deviation (n - 1)
    over each item's first `frames` frames."""
    mask = (torch.arange(x.shape[1], device=x.device) < frames[:, None]).to(x.dtype)[..., None]
    count = frames.to(x.dtype)[:, None]
    mean = (x * mask).sum(1) / count
    variance = (((x - mean[:, None]) * mask) ** 2).sum(1) / (count - 1).clamp(min=1)
    return torch.cat([mean, variance.sqrt()], 1)


def standardisation(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean and spread (standard deviation + 1e-5) of a block of descriptions, by column:
    what every z-scoring of descriptions divides by (training clips, a speaker, a recording)."""
    return block.mean(0), block.std(0) + 1e-5


def speaker_zscored(
    descriptions: np.ndarray, speakers: list[str | None], min_segments: int
) -> tuple[np.ndarray, list[int]]:
    """Each description z-scored over its speaker's (speakers heard in at least `min_segments`
    segments; None is no speaker), and the rows that got one."""
    zscored, rows = np.zeros_like(descriptions), []
    for speaker in dict.fromkeys(speakers):
        mine = [i for i, s in enumerate(speakers) if s == speaker]
        if speaker is None or len(mine) < max(min_segments, 2):
            continue
        block = descriptions[mine]
        mean, spread = standardisation(block)
        zscored[mine] = (block - mean) / spread
        rows += mine
    return zscored, sorted(rows)


def sample_spans(segments: list[Segment]) -> list[tuple[int, int]]:
    """Each segment's [first, last) sample indices at 16 kHz: the stretch the head describes."""
    return [(int(s.start_s * SAMPLE_RATE), int(s.end_s * SAMPLE_RATE)) for s in segments]


class WhisperEmotionScorer:
    """Scores the segments of a decoded episode: the Whisper description of each, then the head.
    `recording_context`: utterances not read against a speaker are also read against the whole
    recording (see the module's doc); off, they are read alone (the evaluations' baseline)."""

    def __init__(self, head: WhisperEmotionHead, device: torch.device, recording_context: bool = True):
        self.encoder = load_encoder(device)
        self.head = head.to(device).eval()
        self.device = device
        self.recording_context = recording_context

    def descriptions(self, samples: np.ndarray, segments: list[Segment]) -> np.ndarray:
        return self.describe([samples[first:last] for first, last in sample_spans(segments)])

    def describe(self, stretches: list[np.ndarray]) -> np.ndarray:
        """(stretches, N_DESCRIPTION): each stretch of 16 kHz samples described on its own."""
        if not stretches:
            return np.zeros((0, N_DESCRIPTION), np.float32)
        return describe_many(self.encoder, stretches, self.device)

    def score(self, samples: np.ndarray, segments: list[Segment]) -> tuple[np.ndarray, np.ndarray]:
        """(segments, 7) emotion and (segments, 3) sentiment probabilities."""
        descriptions = self.descriptions(samples, segments)
        return self.probabilities(descriptions, [s.speaker for s in segments], [s.kind for s in segments])

    @torch.inference_mode()
    def probabilities(
        self, descriptions: np.ndarray, speakers: list[str | None], kinds: list[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each description read against its speaker where they are heard often enough; the rest
        alone, and, with `recording_context` in a recording of enough segments, the utterances
        among them also against it. `kinds`: each segment's (`Segment.kind`); None: utterances."""
        head, least = self.head, max(self.head.config.min_segments, 2)
        logits = head(torch.from_numpy(descriptions).to(self.device))
        zscored, rows = speaker_zscored(descriptions, speakers, head.config.min_segments)
        if rows:
            logits[rows] = head.speaker(torch.from_numpy(zscored[rows]).to(self.device))
        emotion = torch.softmax(logits.float(), -1).cpu().numpy()
        windows = {i for i, kind in enumerate(kinds or []) if kind == Segmentation.window.value}
        unnamed = sorted(set(range(len(speakers))) - set(rows) - windows)
        if self.recording_context and unnamed and len(speakers) >= least:
            mean, spread = standardisation(descriptions)  # of the whole recording
            for first in range(0, len(unnamed), 512):  # a long episode's rows a slice at a time
                part = unnamed[first : first + 512]
                against = head.speaker(torch.from_numpy((descriptions[part] - mean) / spread).to(self.device))
                emotion[part] = (emotion[part] + torch.softmax(against.float(), -1).cpu().numpy()) / 2
        return emotion, emotion @ SENTIMENT_OF_EMOTION

    def dims(self, emotion: np.ndarray) -> np.ndarray:
        """(segments, 3) valence, arousal, dominance: the emotion probabilities through the lexicon."""
        return (emotion @ self.head.lexicon.cpu().numpy()).astype(np.float32)


class WhisperDims:
    """The Whisper head as the dims model beside another emotion model: its own emotion
    probabilities through the lexicon."""

    def __init__(self, scorer: WhisperEmotionScorer):
        self.scorer = scorer

    def score(self, samples: np.ndarray, segments: list[Segment]) -> np.ndarray:
        return self.scorer.dims(self.scorer.score(samples, segments)[0])
