"""Episodes with known speakers for judging diarizers: 3-5 voices, short turns, overlaps.

Each episode is a conversation of 3-5 voices of one corpus, in every emotion: a turn is 1-3 of
a speaker's sentences (near-silence trimmed, 0.1-0.3 s apart), the next turn another speaker's,
0.2-0.8 s later or, one change in five, starting 0.2-0.8 s before the previous one ends. Each
voice has its own level (-32 to -22 dBFS) and share of the talk (the first voice, a host, about
twice the others'); a sentence keeps its recorded loudness relative to the voice's other
sentences in the episode (angry ones louder, sad ones quieter, as they were acted and as the
shared episodes keep them), +-3 dB; with `natural_levels=False` (the generator before
2026-12-07's night) every sentence lies +-3 dB around the voice's level. Pink noise lies under it
at -60 to -45 dBFS, and half the episodes are in a synthetic room.

Voices: `split="final"` draws only voices that no decision about the diarizer looks at (the
RAVDESS actors every recipe holds out, and nEMO's final-test speakers); `split="dev"` draws the
other RAVDESS actors and nEMO's development speakers, on which the diarizer's settings are
chosen. Truth is the dry span of every sentence with its voice.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from ser_pipeline.audio import SAMPLE_RATE
from ser_pipeline.diarization import Turn
from ser_pipeline.schema import SENTIMENT_OF_EMOTION
from ser_pipeline.segmentation import Segment
from ser_pipeline.training.data import Clip, read_clip, split_voices
from ser_pipeline.training.emotion import colored_noise, reverberate, room_response
from ser_pipeline.training.laughter import ALWAYS_A_ROOM, at_level, trim_silence


@dataclass(frozen=True)
class SpeakerEpisode:
    name: str
    samples: np.ndarray
    turns: list[Turn]  # one per sentence: its dry span and voice
    room: bool
    emotions: tuple[str, ...] = ()  # each sentence's 7-class label (built episodes)

    @property
    def speakers(self) -> int:
        return len({t.speaker for t in self.turns})


def shared_episodes(data) -> list[SpeakerEpisode]:
    """The shared episodes (development data: their voices and laughs are the shared ones) with
    their truth's sentences as the turns; laughter is not speech."""
    from ser_pipeline.audio import decode
    from ser_pipeline.evaluation import read_truth

    episodes = []
    for truth in sorted((data / "episodes").rglob("*.truth.csv")):
        speech, _ = read_truth(truth)
        turns = [Turn(float(r["start"]), float(r["end"]), r["speaker"]) for r in speech]
        audio = decode(truth.with_name(truth.name.removesuffix(".truth.csv") + ".mp3"))
        emotions = tuple(r["label"] for r in speech)
        episodes.append(SpeakerEpisode(truth.name.removesuffix(".truth.csv"), audio.samples, turns, False, emotions))
    return episodes


@dataclass(frozen=True)
class _Placed:
    """A sentence placed in a built episode, before its level is set."""

    start: int  # sample
    samples: np.ndarray  # trimmed, as recorded
    voice: str
    recorded_db: float  # its level as recorded
    jitter_db: float  # drawn +-3 dB


def rms_db(samples: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(samples, dtype=np.float64)) + 1e-12))


def build_episodes(
    data, split: str, count: int = 8, minutes: float = 4.0, seed: int = 0, natural_levels: bool = True
) -> list[SpeakerEpisode]:
    """`count` episodes of about `minutes`, alternately of RAVDESS and nEMO voices, with 3, 4 or 5 of them."""
    rng = np.random.default_rng(seed)
    pools = split_voices(data, split)
    corpora = sorted(pools)
    episodes = []
    for index in range(count):
        pool = pools[corpora[index % len(corpora)]]
        names = sorted(pool)
        n = min(3 + index // len(corpora) % 3, len(names))
        cast = [names[i] for i in rng.choice(len(names), n, replace=False)]
        room = index % 4 >= 2
        episodes.append(_episode(f"{split}-{index + 1:02d}", cast, pool, room, minutes, rng, natural_levels))
    return episodes


def _episode(
    name: str, cast: list[str], pool: dict[str, list[Clip]], room: bool, minutes: float, rng, natural_levels: bool
) -> SpeakerEpisode:
    length = int(minutes * 60 * SAMPLE_RATE)
    dry = np.zeros(length + 30 * SAMPLE_RATE, np.float32)
    levels = {voice: rng.uniform(-32, -22) for voice in cast}
    share = np.array([2.0] + [1.0] * (len(cast) - 1))
    turns: list[Turn] = []
    emotions: list[str] = []
    placed: list[_Placed] = []
    cursor, previous = int(rng.uniform(0.5, 2) * SAMPLE_RATE), None
    while cursor < length:
        choices = [i for i in range(len(cast)) if cast[i] != previous]
        weights = share[choices] / share[choices].sum()
        voice = cast[choices[rng.choice(len(choices), p=weights)]]
        for sentence_index in range(rng.integers(1, 4)):
            clip = pool[voice][rng.integers(len(pool[voice]))]
            sentence, jitter_db = trim_silence(read_clip(clip.path)), rng.uniform(-3, 3)
            if sentence_index:
                cursor += int(rng.uniform(0.1, 0.3) * SAMPLE_RATE)
            placed.append(_Placed(cursor, sentence, voice, rms_db(sentence), jitter_db))
            turns.append(Turn(cursor / SAMPLE_RATE, (cursor + len(sentence)) / SAMPLE_RATE, voice))
            emotions.append(clip.label)
            cursor += len(sentence)
        overlap = rng.random() < 0.2
        cursor += int(rng.uniform(0.2, 0.8) * SAMPLE_RATE) * (-1 if overlap else 1)
        previous = voice
    heard = {one.voice for one in placed}
    usual = {voice: np.mean([one.recorded_db for one in placed if one.voice == voice]) for voice in heard}
    for one in placed:
        relative = one.recorded_db - usual[one.voice] if natural_levels else 0.0
        gain_db = levels[one.voice] + relative + one.jitter_db
        dry[one.start : one.start + len(one.samples)] += at_level(one.samples, gain_db)
    dry = dry[: max(int(turns[-1].end_s * SAMPLE_RATE), cursor)]
    if room:
        dry = reverberate(dry, room_response(rng, ALWAYS_A_ROOM))
    mix = dry + colored_noise(len(dry), rng, 0.5) * 10 ** (rng.uniform(-60, -45) / 20)
    return SpeakerEpisode(name, np.clip(mix, -1, 1).astype(np.float32), turns, room, tuple(emotions))


@dataclass(frozen=True)
class EpisodeDiarization:
    name: str
    speakers: int
    found: int
    der: float
    missed: float
    false_alarm: float
    confusion: float


@dataclass(frozen=True)
class Diarized:
    """An episode's segments without speakers (its true sentences, or its voice-activity
    utterances) and the diarizer's turns over them."""

    episode: SpeakerEpisode
    segments: list[Segment]
    turns: list[Turn]


def diarize(diarizer, episodes: list[SpeakerEpisode], sentences: bool = False, laughter=None) -> list[Diarized]:
    """Each episode diarized from its own voice activity (no transcript), or with `sentences`
    from its true sentences' spans (as a transcript without speaker names gives them). With
    `laughter` (an `Analyzer`), its detector's laughs are cut out of voice activity, as the
    pipeline cuts them."""
    from ser_pipeline.segmentation import Segment, vad_segments

    out = []
    for episode in episodes:
        laughs = []
        if sentences:
            segments = [Segment(i, "sentence", t.start_s, t.end_s) for i, t in enumerate(episode.turns)]
        else:
            segments = vad_segments(episode.samples)
            if laughter is not None:
                laughs = [(e.start_s, e.end_s) for e in laughter.analyze(episode.samples, []).events]
        regions = [(s.start_s, s.end_s) for s in segments]
        turns = diarizer.turns(episode.samples, regions, utterances=sentences, exclude=laughs)
        out.append(Diarized(episode, segments, turns))
    return out


def score_diarizer(diarized: list[Diarized], log=lambda line: None) -> dict:
    """Each episode's turns against its truth: per episode and pooled (errors over all reference
    speech), with the share of episodes whose speaker count is exact."""
    from ser_pipeline.metrics import diarization_score

    rows, pooled = [], np.zeros(4)
    for done in diarized:
        episode = done.episode
        score = diarization_score(episode.turns, done.turns)
        speech = max(score.speech_s, 1e-9)
        rows.append(
            EpisodeDiarization(
                episode.name,
                score.reference_speakers,
                score.hypothesis_speakers,
                round(score.der, 4),
                round(score.missed_s / speech, 4),
                round(score.false_alarm_s / speech, 4),
                round(score.confusion_s / speech, 4),
            )  # fmt: skip
        )
        pooled += [score.missed_s, score.false_alarm_s, score.confusion_s, score.speech_s]
        log(f"{episode.name}: {rows[-1]}")
    return {
        "der_pooled": round(float(pooled[:3].sum() / pooled[3]), 4),
        "missed": round(float(pooled[0] / pooled[3]), 4),
        "false_alarm": round(float(pooled[1] / pooled[3]), 4),
        "confusion": round(float(pooled[2] / pooled[3]), 4),
        "der_mean": round(float(np.mean([r.der for r in rows])), 4),
        "speaker_count_exact": round(float(np.mean([r.speakers == r.found for r in rows])), 4),
        "episodes": [r.__dict__ for r in rows],
    }


def emotion_with_speakers(analyzer, diarized: list[Diarized], log=lambda line: None) -> dict:
    """The emotion model on the episodes' segments, their speakers given three ways: the truth's
    (a transcript with names), the diarizer's, none; segments without speakers are read as the
    pipeline reads them (`unnamed`: alone and against the whole episode, see `whisper_emotion`)
    and each alone (`alone`, the reading before 2026-12-07). Segments are the true sentences, or
    voice-activity utterances each scored against the sentence covering most of it (at least half).
    7-class and sentiment UAR, and 95% paired-bootstrap intervals of the differences that matter."""
    from ser_pipeline.diarization import attribute
    from ser_pipeline.metrics import uar_difference_interval, unweighted_average_recall
    from ser_pipeline.schema import EMOTIONS, SENTIMENTS

    sentiment_of = dict(zip(EMOTIONS, (SENTIMENTS[i] for i in SENTIMENT_OF_EMOTION.argmax(1)), strict=True))
    truth: list[str] = []
    predicted: dict[str, list[str]] = {"transcript": [], "embedded": [], "unnamed": [], "alone": []}
    sentiment: dict[str, list[str]] = {name: [] for name in predicted}
    for done in diarized:
        episode, bare = done.episode, done.segments
        labels, scored = _covering_labels(bare, episode)
        named = attribute(bare, episode.turns, "transcript")
        found = attribute(bare, done.turns, "embedded")
        for name, segments in (("transcript", named), ("embedded", found), ("unnamed", bare), ("alone", bare)):
            with _recording_context(analyzer, name != "alone"):
                columns = analyzer.analyze(episode.samples, segments).columns
            predicted[name] += [columns["emotion"][i] for i in scored]
            sentiment[name] += [columns["sentiment"][i] for i in scored]
        truth += [labels[i] for i in scored]
        log(f"{episode.name}: {len(scored)} of {len(bare)} segments scored")
    truth_sentiment = [sentiment_of[label] for label in truth]
    labels = [e for e in EMOTIONS if e in set(truth)]

    def compare(first: str, second: str) -> dict:
        return {
            "emotion": [
                round(x, 4) for x in uar_difference_interval(truth, predicted[first], predicted[second], labels)
            ],
            "sentiment": [
                round(x, 4)
                for x in uar_difference_interval(truth_sentiment, sentiment[first], sentiment[second], list(SENTIMENTS))
            ],
        }

    return {
        "sentences": len(truth),
        "emotion_uar": {k: round(unweighted_average_recall(truth, v, labels), 4) for k, v in predicted.items()},
        "sentiment_uar": {
            k: round(unweighted_average_recall(truth_sentiment, v, list(SENTIMENTS)), 4) for k, v in sentiment.items()
        },
        "interval_embedded_minus_unnamed": compare("embedded", "unnamed"),
        "interval_unnamed_minus_alone": compare("unnamed", "alone"),
        "interval_embedded_minus_alone": compare("embedded", "alone"),
        "interval_transcript_minus_embedded": compare("transcript", "embedded"),
    }


@contextlib.contextmanager
def _recording_context(analyzer, on: bool):
    """The Whisper head's reading of unnamed segments against their recording, on or off for a while."""
    scorer = analyzer.models.waveform_emotion
    before = scorer.recording_context if scorer is not None else None
    if scorer is not None:
        scorer.recording_context = on
    try:
        yield
    finally:
        if scorer is not None:
            scorer.recording_context = before


def _covering_labels(segments, episode: SpeakerEpisode) -> tuple[list[str | None], list[int]]:
    """Each segment's emotion: that of the sentence overlapping it most, and the segments that
    sentence covers at least half of (the ones scored)."""
    labels, scored = [], []
    for index, segment in enumerate(segments):
        overlaps = [min(t.end_s, segment.end_s) - max(t.start_s, segment.start_s) for t in episode.turns]
        best = int(np.argmax(overlaps)) if overlaps else -1
        labels.append(episode.emotions[best] if best >= 0 else None)
        if best >= 0 and overlaps[best] >= 0.5 * segment.duration_s:
            scored.append(index)
    return labels, scored


def mfcc_means(windows: list[np.ndarray], n_mfcc: int = 20) -> np.ndarray:
    """The issue's simple baseline embedding: each window's mean MFCCs (c1 onwards: c0 is its
    level), standardised over the episode's windows, L2-normalised; clustered as the GE2E
    embeddings are (`EmbeddedDiarizer(embedder=mfcc_means)`)."""
    import torch

    from ser_pipeline.features import LogMel, mfcc_from_logmel

    if not windows:
        return np.zeros((0, n_mfcc - 1), np.float32)
    front_end = LogMel()
    with torch.inference_mode():
        means = np.stack([
            mfcc_from_logmel(front_end.frames(torch.from_numpy(window)), n_mfcc)[:, 1:].mean(0).numpy()
            for window in windows
        ])  # fmt: skip
    means = (means - means.mean(0)) / (means.std(0) + 1e-6)
    return means / np.linalg.norm(means, axis=1, keepdims=True).clip(1e-8)
