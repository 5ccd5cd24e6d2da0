"""Test episodes for laughter detectors, built by a generator unlike the shared episodes' and the
recipe's scenes: voices no recipe trains on, laughs barely above the speech, laughs that start
before a sentence ends, music beds, rooms, and noise colours the recipe never draws.

Each episode is a conversation of two unheard voices (nEMO's final-test speakers, Polish, and the
RAVDESS actors the recipes hold out) in every emotion, their sentences separated by 0.2-1.0 s; a
laugh of one of the six laughers every recipe holds out (the shared episodes' laughers: a 0.8-3 s
excerpt of their clip) follows a sentence every 15-35 s, half the time starting 0.2-0.8 s before
that sentence ends, always only 2-6 dB above it (RMS). The episodes' conditions form a grid, so
each shows separately: with or without a music bed (plucked chords and a kick drum, 8-14 dB
under the speech), dry or in a room (a synthetic impulse response), over one of five noises
(white, pink, brown, blue or mains hum with its harmonics) at -60 to -40 dBFS.

A laugh counts as found when a detected event matches it one to one (IoU >= 0.3); every other
event is a false alarm. Truth is the dry laugh's span (a room's tail after it is not counted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ser_pipeline.audio import SAMPLE_RATE
from ser_pipeline.laughter import LaughterEvent, matched_pairs
from ser_pipeline.training.data import nonverbal_clips, read_clip, split_voices
from ser_pipeline.training.emotion import colored_noise, reverberate, room_response
from ser_pipeline.training.laughter import ALWAYS_A_ROOM, DEFAULT_HELD_OUT_LAUGHERS, at_level, trim_silence

NOISES = ("white", "pink", "brown", "blue", "hum")


@dataclass(frozen=True)
class Laugh:
    start_s: float
    end_s: float
    laugher: str
    overlaps_speech: bool  # starts before the sentence it follows has ended


@dataclass(frozen=True)
class TestEpisode:
    name: str
    samples: np.ndarray
    laughs: list[Laugh]
    music: bool
    room: bool
    noise: str

    @property
    def hours(self) -> float:
        return len(self.samples) / SAMPLE_RATE / 3600


@dataclass
class Tally:
    """Laughs found and false alarms of one detector over a set of episodes (or of laughs)."""

    laughs: int = 0
    found: int = 0
    false_alarms: int = 0
    hours: float = 0.0

    @property
    def recall(self) -> float:
        return self.found / self.laughs if self.laughs else float("nan")

    @property
    def precision(self) -> float:
        detected = self.found + self.false_alarms
        return self.found / detected if detected else float("nan")

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        if np.isnan(p) or np.isnan(r):
            return float("nan")
        return 2 * p * r / (p + r) if p + r else 0.0

    def summary(self) -> dict:
        """JSON-ready: a ratio without a denominator is None."""
        return {
            "laughs": self.laughs,
            "found": self.found,
            "recall": _rounded(self.recall),
            "false_alarms": self.false_alarms,
            "precision": _rounded(self.precision),
            "f1": _rounded(self.f1),
            "false_alarms_per_hour": round(self.false_alarms / self.hours, 1) if self.hours else None,
        }


def _rounded(value: float) -> float | None:
    return None if np.isnan(value) else round(value, 3)


def _noise(kind: str, length: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise: white, pink (1/f), brown (1/f^2), blue (f) or mains hum (50 Hz and its
    odd harmonics, with a little white noise)."""
    if kind == "hum":
        t = np.arange(length) / SAMPLE_RATE
        out = sum(np.sin(2 * np.pi * 50 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 3, 5, 7, 9))
        out = out + 0.05 * rng.standard_normal(length)
    else:
        out = colored_noise(length, rng, {"white": 0.0, "pink": 0.5, "brown": 1.0, "blue": -0.5}[kind])
    return (out / (np.sqrt(np.mean(out**2)) + 1e-12)).astype(np.float32)


def music_bed(length: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS music: a I-V-vi-IV progression of plucked three-note chords (three partials each,
    decaying) changing every 2 s, over a kick drum on every beat at 120 bpm, from a random key."""
    t = np.arange(int(2.0 * SAMPLE_RATE)) / SAMPLE_RATE
    root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
    chords = ((0, 4, 7), (7, 11, 14), (9, 12, 16), (5, 9, 12))
    bars = []
    for chord in chords:
        notes = sum(
            np.sin(2 * np.pi * root * 2 ** (step / 12) * partial * t) / partial**1.5
            for step in chord
            for partial in (1, 2, 3)
        )
        bars.append(notes * np.exp(-t * 1.5))
    beat = np.arange(int(0.5 * SAMPLE_RATE)) / SAMPLE_RATE
    kick = np.sin(2 * np.pi * (60 + 90 * np.exp(-beat * 30)) * beat) * np.exp(-beat * 12)
    loop = np.concatenate(bars) + 1.5 * np.tile(kick, 16)
    out = np.tile(loop, -(-length // len(loop)))[:length]
    return (out / (np.sqrt(np.mean(out**2)) + 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class Cast:
    """Who speaks and who laughs in a set of episodes: voice -> its clips, laugher -> their laugh."""

    voices: dict[str, list]
    laughs: dict[str, np.ndarray]


def final_test_cast(data) -> Cast:
    """The test episodes' people: nEMO's final-test speakers and the RAVDESS actors the recipes
    hold out; the six laughers every laughter recipe holds out."""
    return _cast(data, "final")


def development_cast(data, part: int | None = None) -> Cast:
    """Development people only: nEMO's development speakers and the other RAVDESS actors; the
    laughers the recipes train on. `part` 0 or 1: every other voice and laugher (sorted by name),
    so that what is fitted on one part can be judged on the other's unheard people."""
    return _cast(data, "dev", part)


def _cast(data, split: str, part: int | None = None) -> Cast:
    """A split's voices (`split_voices`) and laughers (the held-out six for "final", the rest for
    "dev"), every other one of each by name with `part`; only the chosen laughs are decoded."""
    voices = {v: clips for corpus in split_voices(data, split).values() for v, clips in corpus.items()}
    laughs = {c.speaker.removeprefix("nonverbal-"): c.path for c in nonverbal_clips(data) if c.label == "laughing"}
    laughs = {k: v for k, v in laughs.items() if (k in DEFAULT_HELD_OUT_LAUGHERS) == (split == "final")}
    if part is not None:
        voices = {v: voices[v] for v in sorted(voices)[part::2]}
        laughs = {k: laughs[k] for k in sorted(laughs)[part::2]}
    return Cast(voices, {k: trim_silence(read_clip(path)) for k, path in laughs.items()})


def build_episodes(
    data, count: int = 16, minutes: float = 3.0, seed: int = 0, cast: Cast | None = None
) -> list[TestEpisode]:
    """`count` episodes of about `minutes` each, conditions dealt as a grid (music x room x noise),
    of `cast`'s people (default: the final test's, `final_test_cast`)."""
    rng = np.random.default_rng(seed)
    cast = cast or final_test_cast(data)
    names = sorted(cast.voices)
    episodes = []
    for index in range(count):
        music, room, noise = index % 2 == 1, index // 2 % 2 == 1, NOISES[index % len(NOISES)]
        pair = [names[i] for i in rng.choice(len(names), 2, replace=False)]
        episodes.append(
            _episode(f"test-{index + 1:02d}", pair, cast.voices, cast.laughs, music, room, noise, minutes, rng)
        )
    return episodes


def _episode(name, pair, voices, laughs, music, room, noise, minutes, rng) -> TestEpisode:
    length = int(minutes * 60 * SAMPLE_RATE)
    dry = np.zeros(length + 10 * SAMPLE_RATE, np.float32)
    placed: list[Laugh] = []
    cursor, next_laugh = int(rng.uniform(0.5, 2) * SAMPLE_RATE), rng.uniform(8, 20)
    levels = {speaker: rng.uniform(-30, -22) for speaker in pair}
    turn = 0
    while cursor < length:
        speaker = pair[turn % 2] if rng.random() < 0.7 else pair[(turn + 1) % 2]
        turn += 1
        clip = voices[speaker][rng.integers(len(voices[speaker]))]
        sentence = at_level(trim_silence(read_clip(clip.path)), levels[speaker] + rng.uniform(-3, 3))
        dry[cursor : cursor + len(sentence)] += sentence[: len(dry) - cursor]
        end = cursor + len(sentence)
        cursor = end + int(rng.uniform(0.2, 1.0) * SAMPLE_RATE)
        if end / SAMPLE_RATE < next_laugh or end > length:
            continue
        laugher = sorted(laughs)[rng.integers(len(laughs))]
        laugh = _excerpt(laughs[laugher], rng)
        sentence_db = 20 * np.log10(np.sqrt(np.mean(sentence**2)) + 1e-12)
        laugh = at_level(laugh, sentence_db + rng.uniform(2, 6))
        overlaps = rng.random() < 0.5
        start = (
            end - int(rng.uniform(0.2, 0.8) * SAMPLE_RATE)
            if overlaps
            else end + int(rng.uniform(0.1, 0.5) * SAMPLE_RATE)
        )
        stop = min(start + len(laugh), len(dry))
        dry[start:stop] += laugh[: stop - start]
        placed.append(Laugh(start / SAMPLE_RATE, stop / SAMPLE_RATE, laugher, overlaps))
        cursor = max(cursor, stop + int(rng.uniform(0.2, 0.8) * SAMPLE_RATE))
        next_laugh = cursor / SAMPLE_RATE + rng.uniform(15, 35)
    dry = dry[:cursor]
    if room:
        dry = reverberate(dry, room_response(rng, ALWAYS_A_ROOM))
    speech_rms = 10 ** (np.mean(list(levels.values())) / 20)
    mix = dry + _noise(noise, len(dry), rng) * 10 ** (rng.uniform(-60, -40) / 20)
    if music:
        mix = mix + music_bed(len(dry), rng) * speech_rms * 10 ** (-rng.uniform(8, 14) / 20)
    return TestEpisode(name, np.clip(mix, -1, 1).astype(np.float32), placed, music, room, noise)


def _excerpt(laugh: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """0.8-3 s of a laugh (all of it if shorter), near-silence trimmed."""
    length = int(rng.uniform(0.8, 3.0) * SAMPLE_RATE)
    if length >= len(laugh):
        return laugh
    start = rng.integers(0, len(laugh) - length)
    return trim_silence(laugh[start : start + length])


@dataclass
class EpisodeScores:
    """One detector's tallies: overall, and by condition and kind of laugh."""

    overall: Tally = field(default_factory=Tally)
    by: dict[str, Tally] = field(default_factory=dict)
    episodes: list[Tally] = field(default_factory=list)  # each episode's own, in order

    def add(self, keys: list[str], laughs: int, found: int, false_alarms: int, hours: float, overall: bool) -> None:
        if overall:
            self.episodes.append(Tally(laughs, found, false_alarms, hours))
        for tally in [self.overall] * overall + [self.by.setdefault(k, Tally()) for k in keys]:
            tally.laughs += laughs
            tally.found += found
            tally.false_alarms += false_alarms
            tally.hours += hours

    def summary(self) -> dict:
        return {"overall": self.overall.summary(), **{k: v.summary() for k, v in sorted(self.by.items())}}


def f1_difference_interval(
    first: EpisodeScores, second: EpisodeScores, rounds: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95% interval of the pooled event F1 of `first` minus that of `second`, the same episodes
    scored by both, by a bootstrap over episodes."""
    from ser_pipeline.clip_evaluation import percentile_interval

    def pooled_f1(scores: EpisodeScores, drawn: np.ndarray) -> float:
        episodes = [scores.episodes[i] for i in drawn]
        total = Tally(*(sum(getattr(e, name) for e in episodes) for name in ("laughs", "found", "false_alarms")))
        return float(np.nan_to_num(total.f1))

    rng = np.random.default_rng(seed)
    draws = (rng.integers(0, len(first.episodes), len(first.episodes)) for _ in range(rounds))
    return percentile_interval([pooled_f1(first, drawn) - pooled_f1(second, drawn) for drawn in draws])


def score_episodes(
    detectors: dict[str, Callable[[np.ndarray], list[LaughterEvent]]],
    episodes: list[TestEpisode],
    log: Callable[[str], None] = print,
) -> dict[str, EpisodeScores]:
    """Every detector on every episode; tallies by condition (music, room, noise; false alarms
    counted there), by kind of laugh (overlapping the sentence's end or after it) and by laugher
    (laughs only)."""
    scores = {name: EpisodeScores() for name in detectors}
    for episode in episodes:
        truth = [(laugh.start_s, laugh.end_s) for laugh in episode.laughs]
        conditions = [
            "music bed" if episode.music else "no music",
            "in a room" if episode.room else "dry",
            f"{episode.noise} noise",
        ]
        line = []
        for name, detect in detectors.items():
            events = detect(episode.samples)
            found = {i for i, _ in matched_pairs(truth, [(e.start_s, e.end_s) for e in events])}
            scores[name].add(conditions, len(truth), len(found), len(events) - len(found), episode.hours, True)
            for index, laugh in enumerate(episode.laughs):
                kind = "laugh over the sentence's end" if laugh.overlaps_speech else "laugh after the sentence"
                scores[name].add([kind, f"laugher {laugh.laugher}"], 1, int(index in found), 0, 0.0, False)
            line.append(f"{name} {len(found)}/{len(truth)} found, {len(events) - len(found)} false alarms")
        log(f"{episode.name} ({', '.join(conditions)}): " + "; ".join(line))
    return scores
