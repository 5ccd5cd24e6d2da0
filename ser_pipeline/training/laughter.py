"""Recipe: the embedded frame-level laughter detector.

Scenes are built on the fly: laughter (`nonverbal/laughing`), other vocalizations (of the
nonverbal classes a podcast holds) and speech (RAVDESS, TESS) placed one after another with
gaps, over noise, each at its own level; frames inside a placed laugh are positives. With only
a dozen laughers to learn from, every placed clip is also sped up or slowed down (pitch and
tempo together), laughs are often cut to an excerpt or joined by a second laugh (people laugh
together), and the scene's noise colour and spectral tilt vary; half of the scenes' log-mel
frames move a few mel bands up or down (a higher or lower voice). The laughers heard in
`../shared/data/episodes` are held out, so the episode evaluation is on unheard laughers.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import librosa
import numpy as np
import scipy.signal
import torch
from torch import nn

from ser_pipeline.architectures import LaughterEnsemble, LaughterEnsembleConfig, LaughterNet, LaughterNetConfig
from ser_pipeline.audio import SAMPLE_RATE, decode
from ser_pipeline.clip_evaluation import in_split
from ser_pipeline.evaluation import laughter_scores, read_truth
from ser_pipeline.features import FrontEndConfig, LogMel
from ser_pipeline.laughter import OperatingPoint, detect_events
from ser_pipeline.training.data import (
    HELD_OUT_ACTORS,
    Clip,
    nemo_clips,
    nonverbal_clips,
    ravdess_clips,
    ravdess_voices,
    read_clip,
    tess_clips,
)
from ser_pipeline.training.emotion import colored_noise, reverberate, room_response

# The laughers of ../shared/data/episodes (first field of the nonverbal file names).
DEFAULT_HELD_OUT_LAUGHERS: tuple[str, ...] = ("3S0D", "4NEJ", "87LX", "BYYM", "CGFR", "GETF")

ALWAYS_A_ROOM = SimpleNamespace(reverb_share=1.0)  # room_response always draws a room

# The speech corpora scenes may draw on (nEMO: its development speakers only, never the final test).
SPEECH_CORPORA = {"ravdess": ravdess_clips, "tess": tess_clips, "nemo": nemo_clips}
# Speech that a laughter detector takes for laughter most often: loud, breathy, broken by bursts.
EXPRESSIVE_EMOTIONS: tuple[str, ...] = ("angry", "happy", "fear", "surprise")

# The other vocalizations the recipe trains on as negatives: those a podcast holds. Crying,
# moaning, panting, screaming and teeth chattering or grinding are left out: as negatives they
# taught the network to miss unheard people's laughs (`laughter-cv`, three seeds: 0.75 of the
# laughs found on average with all 15 classes, 0.82 without those six; screams are the price),
# and a podcast seldom holds them.
PODCAST_VOCALIZATIONS: tuple[str, ...] = (
    "coughing",
    "lip-popping",
    "lip-smacking",
    "nose-blowing",
    "sighing",
    "sneezing",
    "throat-clearing",
    "tongue-clicking",
    "yawning",
)

# The operating points published with the recipe's model. `balanced` keeps 0.5: lower
# thresholds find more laughs of unheard laughers (`laughter-cv`) but fire on speech in noise
# (docs/evaluation.md). At 0.8 a laugh's probability dips below the threshold between bursts
# more often, so `high_precision` bridges longer gaps: with 0.3 s it counted one laugh twice.
OPERATING_POINTS = {
    "balanced": OperatingPoint(threshold=0.5),
    "high_precision": OperatingPoint(threshold=0.8, min_duration_s=0.5, merge_gap_s=0.6),
}


@dataclass(frozen=True)
class LaughterRecipe:
    data: Path
    held_out_laughers: tuple[str, ...] = DEFAULT_HELD_OUT_LAUGHERS
    epochs: int = 40
    scenes_per_epoch: int = 192
    scene_s: float = 8.0
    batch_size: int = 16
    learning_rate: float = 2e-3
    seed: int = 0
    speech_clips: int = 1500  # drawn evenly from the speech corpora
    speech_corpora: tuple[str, ...] = ("ravdess", "tess", "nemo")  # of SPEECH_CORPORA (v6: RAVDESS and TESS)
    # RAVDESS actors whose speech is kept out, so false alarms are measured on unheard voices (v6: none).
    held_out_actors: tuple[int, ...] = HELD_OUT_ACTORS
    expressive_share: float = 0.5  # placed speech drawn from EXPRESSIVE_EMOTIONS this often: hard negatives (v6: 0)
    laughter_share: float = 0.3
    vocalization_share: float = 0.25  # placed clips drawn from the other vocalizations (the rest: speech)
    vocalization_classes: tuple[str, ...] | None = PODCAST_VOCALIZATIONS  # which of them are negatives (None: all 15)
    augment: bool = True  # speed, excerpts, noise colour, tilt, band shift (False: the v1 recipe's scenes)
    speed_range: tuple[float, float] = (0.85, 1.2)  # per placed clip
    laugh_excerpt_share: float = 0.5  # laughs cut to an excerpt of 0.6-3 s this often
    together_share: float = 0.3  # placed laughs joined by a second laugh this often (0: the v2 recipe)
    band_shift_share: float = 0.5  # scenes whose log-mel frames move up or down the mel bands this often
    band_shift: int = 3  # by up to this many bands (0: the v3 recipe)
    sharpen_share: float = 0.0  # placed clips (laughs, vocalizations, speech) with a sharpened spectrum this often
    sharpen_power: float = 1.5  # their magnitude spectrum raised to a power drawn up to this
    bandlimit_share: float = 0.0  # placed clips (laughs, vocalizations, speech) low-passed this often, before the noise
    bandlimit_hz: tuple[float, float] = (2500.0, 6000.0)  # at a cutoff drawn from this range
    members: int = 1  # networks trained with seeds seed, seed + 1, ..., their logits averaged
    room_share: float = 0.0  # scenes whose placed clips sound in a synthetic room (before the noise) this often
    overlap_share: float = 0.0  # laughs that start 0.2-0.8 s before the clip placed before them ends, this often
    # Placed speech cut into syllable-long pieces put in another order, this often: the same voices
    # and sounds in an order no language has, hard negatives beyond the corpora's languages (v7: 0).
    shuffle_share: float = 0.8
    # PCEN input (1.5 s each side): a steady noise floor looks alike at any level, so a laugh with
    # no breath above 4 kHz is not lost to faint room noise there (0: log-mel, the v5 recipe).
    network: LaughterNetConfig = LaughterNetConfig(stride=2, dilations=(1, 2, 4, 8, 16, 32), pcen_half_window=150)


def trim_silence(samples: np.ndarray, floor_db: float = 35.0) -> np.ndarray:
    """Cut leading and trailing near-silence (20 ms frames below peak - floor_db)."""
    frame = SAMPLE_RATE // 50
    usable = len(samples) // frame * frame
    if usable == 0:
        return samples
    energy = 10 * np.log10((samples[:usable].reshape(-1, frame) ** 2).mean(axis=1) + 1e-12)
    loud = np.flatnonzero(energy > energy.max() - floor_db)
    return samples[loud[0] * frame : (loud[-1] + 1) * frame]


def at_level(samples: np.ndarray, rms_db: float) -> np.ndarray:
    rms = np.sqrt(np.mean(samples**2)) + 1e-9
    return samples * (10 ** (rms_db / 20) / rms)


def _speed(samples: np.ndarray, factor: float) -> np.ndarray:
    """Played `factor` times faster (pitch and tempo together), by linear interpolation."""
    if factor == 1.0:
        return samples
    positions = np.arange(0, len(samples) - 1, factor)
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)


def _together(laugh: np.ndarray, other: np.ndarray, rng: random.Random) -> np.ndarray:
    """Two people laughing at once: `other` (a second laugh from the pool, sped up or slowed
    down like any placed clip) at -9 to 0 dB relative to `laugh`, from a random offset inside it."""
    other = _speed(other, rng.uniform(0.85, 1.2))[: len(laugh)]
    start = rng.randrange(max(1, len(laugh) - len(other) + 1))
    mixed = laugh.copy()
    gain = np.sqrt(np.mean(laugh**2) / (np.mean(other**2) + 1e-12)) * 10 ** (rng.uniform(-9, 0) / 20)
    mixed[start : start + len(other)] += gain * other
    return mixed


def excerpt(samples: np.ndarray, rng: random.Random) -> np.ndarray:
    length = int(rng.uniform(0.6, 3.0) * SAMPLE_RATE)
    if length >= len(samples):
        return samples
    start = rng.randrange(len(samples) - length)
    return trim_silence(samples[start : start + length])


def _tilt(samples: np.ndarray, rng: random.Random) -> np.ndarray:
    """A random spectral tilt: a one-pole low-pass (darker, as through a cheap microphone or a
    lossy codec), a first-difference emphasis (thinner), or nothing."""
    kind = rng.choice(("none", "low", "high"))
    if kind == "none":
        return samples
    if kind == "high":
        return samples - rng.uniform(0.3, 0.9) * np.concatenate([[0.0], samples[:-1]]).astype(np.float32)
    pole = rng.uniform(0.3, 0.85)
    return scipy.signal.lfilter([1 - pole], [1, -pole], samples).astype(np.float32)


def sharpen(samples: np.ndarray, power: float) -> np.ndarray:
    """The magnitude spectrum raised to `power` (> 1), phase kept: harmonics stand out further
    from the breath and noise between them, as in a voiced, song-like laugh or a clear voice
    (the training laughs' median spectral flatness falls from 0.001-0.034 to 0.002 or less at 1.5)."""
    spectrum = librosa.stft(samples, n_fft=1024, hop_length=256)
    magnitude = np.abs(spectrum)
    sharpened = (magnitude / (magnitude.max() + 1e-12)) ** power * np.exp(1j * np.angle(spectrum))
    return librosa.istft(sharpened, hop_length=256, length=len(samples)).astype(np.float32)


def bandlimit(samples: np.ndarray, cutoff_hz: float) -> np.ndarray:
    """Nothing above `cutoff_hz` (an 8th-order Butterworth low-pass): a voice recorded or sent
    through a narrow band (a telephone guest, a low-bitrate codec), into a room whose noise is not."""
    sections = scipy.signal.butter(8, cutoff_hz, "low", fs=SAMPLE_RATE, output="sos")
    return scipy.signal.sosfilt(sections, samples).astype(np.float32)


def shuffled(samples: np.ndarray, rng: random.Random) -> np.ndarray:
    """`samples` cut into pieces of 0.1-0.35 s (about a syllable each), put in a random order,
    each faded in and out over 5 ms so that no click marks the cuts."""
    pieces, start = [], 0
    while start < len(samples):
        end = min(start + int(rng.uniform(0.1, 0.35) * SAMPLE_RATE), len(samples))
        pieces.append(samples[start:end].copy())
        start = end
    rng.shuffle(pieces)
    fade = SAMPLE_RATE // 200
    for piece in pieces:
        ramp = np.linspace(0.0, 1.0, min(fade, len(piece) // 2), dtype=np.float32)
        if len(ramp):
            piece[: len(ramp)] *= ramp
            piece[len(piece) - len(ramp) :] *= ramp[::-1]
    return np.concatenate(pieces).astype(np.float32)


def unlike_any_language(speech: np.ndarray, recipe: LaughterRecipe, rng: random.Random) -> np.ndarray:
    """Placed speech shuffled (`shuffled`) `recipe.shuffle_share` of the time (no random draw where
    the share is 0: older recipes' scenes stay as they were)."""
    if recipe.shuffle_share and rng.random() < recipe.shuffle_share:
        return shuffled(speech, rng)
    return speech


class SceneMaker:
    def __init__(
        self,
        laughs: list[np.ndarray],
        others: list[np.ndarray],
        speech: list[np.ndarray],
        recipe: LaughterRecipe,
        rng: random.Random,
        expressive: list[np.ndarray] | None = None,
    ):
        """`expressive`: the speech drawn `recipe.expressive_share` of the time instead of `speech`."""
        self.laughs, self.others, self.speech = laughs, others, speech
        self.expressive = expressive or speech
        self.recipe, self.rng = recipe, rng

    def _pool(self, is_laugh: bool, other: bool) -> list[np.ndarray]:
        if is_laugh:
            return self.laughs
        if other:
            return self.others
        hard = self.recipe.expressive_share and self.rng.random() < self.recipe.expressive_share
        return self.expressive if hard else self.speech

    def scene(self) -> tuple[np.ndarray, np.ndarray]:
        """(samples, per-sample laughter mask) of one scene."""
        rng, length = self.rng, int(self.recipe.scene_s * SAMPLE_RATE)
        noise_db = rng.uniform(-65, -40)
        noise_rng, augment = np.random.default_rng(rng.getrandbits(32)), self.recipe.augment
        noise = colored_noise(length, noise_rng) if augment else noise_rng.standard_normal(length)
        audio = noise.astype(np.float32) * 10 ** (noise_db / 20)
        dry = np.zeros(length, np.float32)  # the placed clips, before a room
        mask = np.zeros(length, dtype=bool)
        cursor = int(rng.uniform(0, 0.8) * SAMPLE_RATE)
        last_end = None  # where the clip placed last ended
        while cursor < length:
            draw = rng.random()
            is_laugh = draw < self.recipe.laughter_share
            other = draw < self.recipe.laughter_share + self.recipe.vocalization_share
            clip = rng.choice(self._pool(is_laugh, other))
            if augment and is_laugh and rng.random() < self.recipe.laugh_excerpt_share:
                clip = excerpt(clip, rng)
            if augment and is_laugh and self.recipe.together_share and rng.random() < self.recipe.together_share:
                clip = _together(clip, rng.choice(self.laughs), rng)
            if augment and not is_laugh and not other:
                clip = unlike_any_language(clip, self.recipe, rng)
            if augment:
                clip = _speed(clip, rng.uniform(*self.recipe.speed_range))
            if augment and self.recipe.sharpen_share and rng.random() < self.recipe.sharpen_share:
                clip = sharpen(clip, rng.uniform(1.0, self.recipe.sharpen_power))
            if augment and self.recipe.bandlimit_share and rng.random() < self.recipe.bandlimit_share:
                clip = bandlimit(clip, rng.uniform(*self.recipe.bandlimit_hz))
            clip = at_level(clip, rng.uniform(-34, -14))
            overlap = self.recipe.overlap_share and is_laugh and last_end is not None
            if overlap and rng.random() < self.recipe.overlap_share:  # laughing before the sentence ends
                cursor = max(last_end - int(rng.uniform(0.2, 0.8) * SAMPLE_RATE), 0)
            piece = clip[: length - cursor]
            dry[cursor : cursor + len(piece)] += piece
            if is_laugh:
                mask[cursor : cursor + len(piece)] = True
            last_end = cursor + len(piece)
            cursor += len(piece) + int(rng.uniform(0.1, 1.2) * SAMPLE_RATE)
        if self.recipe.room_share and rng.random() < self.recipe.room_share:
            dry = reverberate(dry, room_response(noise_rng, ALWAYS_A_ROOM))
        audio += dry
        return np.clip(_tilt(audio, rng) if augment else audio, -1, 1), mask


def shift_bands(logmel: torch.Tensor, move: int) -> torch.Tensor:
    """Log-mel frames (..., n_mels) moved `move` mel bands up (down if negative), the edge band repeated."""
    bands = torch.arange(logmel.shape[-1])
    return logmel[..., (bands - move).clamp(0, len(bands) - 1)]


def _shift_bands(logmel: torch.Tensor, recipe: LaughterRecipe, rng: random.Random) -> torch.Tensor:
    """Each scene's log-mel frames moved up or down by a few mel bands, on a share of the scenes:
    a voice higher or lower in pitch and formants, without the traces a resynthesis would leave,
    speech and laughter alike."""
    shifted = []
    for scene in logmel:
        move = rng.randint(-recipe.band_shift, recipe.band_shift) if rng.random() < recipe.band_shift_share else 0
        shifted.append(shift_bands(scene, move))
    return torch.stack(shifted)


def _frame_labels(mask: np.ndarray, frame_count: int, hop: int) -> np.ndarray:
    centres = np.minimum(np.arange(frame_count) * hop, len(mask) - 1)
    return mask[centres].astype(np.float32)


def score_frames(network: nn.Module, logmel: torch.Tensor) -> np.ndarray:
    network.eval()
    with torch.inference_mode():
        return torch.sigmoid(network(logmel[None]))[0].numpy()


def evaluate_on_episodes(network: nn.Module, episodes_dir: Path, point: OperatingPoint) -> dict:
    """Laughter scores of `network` against every episode's `.truth.csv` (see `laughter_scores`)."""
    front_end = LogMel(FrontEndConfig())
    fps = front_end.config.frames_per_second
    episodes = {}
    for truth_file in sorted(episodes_dir.glob("*/*.truth.csv")):
        name = truth_file.name.removesuffix(".truth.csv")
        audio = decode(truth_file.with_name(f"{name}.mp3"))
        probs = score_frames(network, front_end.episode(audio.samples, torch.device("cpu")))
        detected = [(e.start_s, e.end_s) for e in detect_events(probs, fps, point)]
        episodes[name] = (audio.duration_s, read_truth(truth_file)[1], detected)
    return laughter_scores(episodes)


def train(recipe: LaughterRecipe, log=print) -> LaughterNet | LaughterEnsemble:
    """One network, or with `recipe.members` > 1 an ensemble of networks each trained as one
    would be with its own seed (its own scenes and initial weights)."""
    if recipe.members == 1:
        return _train_network(recipe, log)
    ensemble = LaughterEnsemble(LaughterEnsembleConfig(**asdict(recipe.network), members=recipe.members))
    for index, member in enumerate(ensemble.members):
        log(f"member {index + 1}/{recipe.members} (seed {recipe.seed + index})")
        member.load_state_dict(_train_network(replace(recipe, seed=recipe.seed + index, members=1), log).state_dict())
    return ensemble.eval()


def _listed(names: tuple[str, ...], shown: int = 12) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def other_vocalizations(clips) -> set[str]:
    """The classes of `clips` other than laughing (nonverbal/'s 15)."""
    return {c.label for c in clips} - {"laughing"}


def negative_classes(recipe: LaughterRecipe, clips) -> set[str]:
    """The vocalization classes the recipe trains on as negatives; unknown names are an error."""
    known = other_vocalizations(clips)
    chosen = known if recipe.vocalization_classes is None else set(recipe.vocalization_classes)
    if unknown := chosen - known:
        raise ValueError(f"unknown vocalization classes {sorted(unknown)}; known: {', '.join(sorted(known))}")
    return chosen


def speech_clips(recipe: LaughterRecipe, rng: random.Random) -> list[Clip]:
    """The speech clips scenes draw on: `recipe.speech_clips` in all, as many from each corpus
    (fewer where a corpus has fewer), without the held-out RAVDESS actors or nEMO's final test."""
    if unknown := set(recipe.speech_corpora) - set(SPEECH_CORPORA):
        raise ValueError(f"unknown speech corpora {sorted(unknown)}; known: {', '.join(SPEECH_CORPORA)}")
    held_out = ravdess_voices(recipe.held_out_actors)
    each = recipe.speech_clips // len(recipe.speech_corpora)
    chosen = []
    for name in recipe.speech_corpora:
        clips = [c for c in SPEECH_CORPORA[name](recipe.data) if in_split(c, "dev") and c.speaker not in held_out]
        chosen += rng.sample(clips, min(each, len(clips)))
    return chosen


def _train_network(recipe: LaughterRecipe, log) -> LaughterNet:
    random.seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    rng = random.Random(recipe.seed)
    front_end = LogMel(FrontEndConfig())
    hop = front_end.config.hop_length
    held_out = {f"nonverbal-{s}" for s in recipe.held_out_laughers}
    # A held-out laugher's other vocalizations are held out too: evaluation is by person.
    nonverbal = [c for c in nonverbal_clips(recipe.data) if c.speaker not in held_out]
    laughs = [trim_silence(read_clip(c.path)) for c in nonverbal if c.label == "laughing"]
    negatives = negative_classes(recipe, nonverbal)
    others = [trim_silence(read_clip(c.path)) for c in nonverbal if c.label in negatives]
    chosen = speech_clips(recipe, rng)
    speech = [trim_silence(read_clip(c.path)) for c in chosen]
    expressive = [s for s, c in zip(speech, chosen, strict=True) if c.label in EXPRESSIVE_EMOTIONS]
    log(
        f"{len(laughs)} laughter clips (held out: {_listed(recipe.held_out_laughers)}),"
        f" {len(others)} other vocalizations ({len(negatives)} classes), {len(speech)} speech clips"
        f" ({', '.join(recipe.speech_corpora)}; {len(expressive)} expressive)"
    )
    maker = SceneMaker(laughs, others, speech, recipe, rng, expressive)

    def batch(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        scenes = [maker.scene() for _ in range(count)]
        logmel = front_end.frames(torch.from_numpy(np.stack([s for s, _ in scenes])))
        labels = np.stack([_frame_labels(m, logmel.shape[1], hop) for _, m in scenes])
        return logmel, torch.from_numpy(labels)

    network = LaughterNet(recipe.network)
    sample, sample_labels = batch(64)
    inputs = network.representation(sample)
    network.feature_mean.copy_(inputs.mean(dim=(0, 1)))
    network.feature_std.copy_(inputs.std(dim=(0, 1)))
    positive_share = float(sample_labels.mean())
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((1 - positive_share) / max(positive_share, 1e-3)))
    optimizer = torch.optim.AdamW(network.parameters(), lr=recipe.learning_rate, weight_decay=1e-2)
    steps_per_epoch = math.ceil(recipe.scenes_per_epoch / recipe.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, recipe.learning_rate, total_steps=recipe.epochs * steps_per_epoch
    )
    for epoch in range(recipe.epochs):
        network.train()
        total = 0.0
        for _ in range(steps_per_epoch):
            logmel, labels = batch(recipe.batch_size)
            if recipe.augment and recipe.band_shift:  # after the input statistics, which see scenes as recorded
                logmel = _shift_bands(logmel, recipe, rng)
            loss = loss_fn(network(logmel), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item()
        log(f"epoch {epoch + 1}/{recipe.epochs} loss {total / steps_per_epoch:.4f}")
    return network.eval()
