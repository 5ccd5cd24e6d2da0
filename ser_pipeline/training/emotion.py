"""Recipe: the embedded emotion network (7 emotions, 3 sentiments, valence/arousal/dominance).

Trained on RAVDESS (actors not held out) and TESS; evaluated on held-out RAVDESS actors at
clip level, so the scores are speaker-independent. Dimensional targets are derived, not
rated: each class's NRC VAD lexicon coordinates, with RAVDESS intensity moving arousal.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import scipy.signal
import soxr
import torch
from torch import nn

from ser_pipeline.architectures import (
    EmotionEnsemble,
    EmotionEnsembleConfig,
    EmotionNet,
    EmotionNetConfig,
    speaker_relative,
    utterance_level,
)
from ser_pipeline.audio import SAMPLE_RATE
from ser_pipeline.clip_evaluation import in_split
from ser_pipeline.features import FrontEndConfig, LogMel, fused_features, voiced_span
from ser_pipeline.metrics import accuracy, concordance_correlation, confusion, unweighted_average_recall
from ser_pipeline.schema import DIMENSIONS, EMOTION_TO_SENTIMENT, EMOTIONS, SENTIMENTS
from ser_pipeline.training.acoustics import acoustic_arousal, arousal_measures
from ser_pipeline.training.data import (
    HELD_OUT_ACTORS,
    Clip,
    nemo_clips,
    ravdess_clips,
    ravdess_voices,
    read_clip,
    tess_clips,
)

# Every RAVDESS voice in ../shared/data/episodes: holding them out makes the episode check
# speaker-independent too. Two male (odd) and two female (even) actors plus one more male.
INTENSITY_AROUSAL_SHIFT = 0.1


@dataclass(frozen=True)
class EmotionRecipe:
    data: Path
    held_out_actors: tuple[int, ...] = HELD_OUT_ACTORS
    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 2e-3
    seed: int = 0
    min_crop_s: float = 1.0
    max_crop_s: float = 4.0
    dims_loss_weight: float = 5.0
    acoustic_arousal_weight: float = 0.4
    dims_only: bool = False  # train the dims head alone (a separate dims model)
    whole_clip_share: float = 0.3
    noise_share: float = 0.7
    speed_share: float = 0.0  # share of crops (speaker groups) sped up or slowed down (`speed_factor`)
    reverb_share: float = 0.0  # share of crops (speaker groups) played in a synthetic room (`room_response`)
    eval_every: int = 5
    clips_limit: int | None = None  # a small subset, for smoke tests of the recipe
    members: int = 1  # networks trained with seeds seed, seed + 1, ... (side by side), probabilities averaged
    network: EmotionNetConfig = field(default_factory=EmotionNetConfig)
    # Training corpora: "nemo" adds nEMO's development speakers (its final-test speakers are never read)
    corpora: tuple[str, ...] = ("ravdess", "tess")


def vad_targets(lexicon_csv: Path, clips: list[Clip], acoustic: np.ndarray, acoustic_weight: float) -> np.ndarray:
    """(clips, 3) valence/arousal/dominance targets: the class's lexicon coordinates, RAVDESS
    intensity moving arousal, and arousal blended with the clip's own acoustic evidence."""
    with lexicon_csv.open() as handle:
        lexicon = {row["word"]: row for row in csv.DictReader(handle)}
    targets = []
    for clip, evidence in zip(clips, acoustic, strict=True):
        row = lexicon[clip.lexicon_word or clip.label]
        valence, arousal, dominance = (float(row[d]) for d in DIMENSIONS)
        if clip.corpus == "ravdess" and clip.label != "neutral":
            arousal += INTENSITY_AROUSAL_SHIFT if clip.intensity == "strong" else -INTENSITY_AROUSAL_SHIFT
        arousal = (1 - acoustic_weight) * min(max(arousal, 0.0), 1.0) + acoustic_weight * evidence
        targets.append([valence, arousal, dominance])
    return np.asarray(targets, dtype=np.float32)


def derived_dims(lexicon_csv: Path, clips: list[Clip], samples: list[np.ndarray], acoustic_weight: float) -> np.ndarray:
    """`vad_targets` of clips (16 kHz samples given), their acoustic evidence of arousal
    z-scored within each speaker over these clips."""
    evidence = acoustic_arousal(np.stack([arousal_measures(x) for x in samples]), [c.speaker for c in clips])
    return vad_targets(lexicon_csv, clips, evidence, acoustic_weight)


def dims_orderings(dims: np.ndarray, clips: list[Clip]) -> dict[str, bool]:
    """The orderings that derived dimensions must keep, checked on class means."""

    def mean(dim: str, label: str, intensity: str | None = None) -> float:
        rows = [i for i, c in enumerate(clips) if c.label == label and intensity in (None, c.intensity)]
        return float(dims[rows, DIMENSIONS.index(dim)].mean())

    checks = {}
    for high in ("angry", "fear", "happy"):
        for low in ("neutral", "sad"):
            checks[f"arousal: strong {high} > {low}"] = mean("arousal", high, "strong") > mean("arousal", low)
    for low in ("sad", "angry", "disgust", "fear"):
        checks[f"valence: happy > {low}"] = mean("valence", "happy") > mean("valence", low)
    checks["dominance: angry > fear"] = mean("dominance", "angry") > mean("dominance", "fear")
    return checks


def dims_scores(predicted: np.ndarray, targets: np.ndarray, clips: list[Clip]) -> dict:
    """CCC per dimension against the derived targets, and the orderings of class means."""
    return {
        **{f"{d}_ccc": concordance_correlation(targets[:, i], predicted[:, i]) for i, d in enumerate(DIMENSIONS)},
        "orderings": dims_orderings(predicted, clips),
    }


def _balanced_epoch(clips: list[Clip], rng: random.Random) -> list[int]:
    """Every RAVDESS clip and as many of each other corpus's, drawn afresh each epoch: TESS
    holds three times more clips from only two speakers, nEMO five times more in another
    language, and left alone they would teach their voices."""
    ravdess = [i for i, c in enumerate(clips) if c.corpus == "ravdess"]
    order = list(ravdess)
    for corpus in sorted({c.corpus for c in clips} - {"ravdess"}, key=lambda name: (name != "tess", name)):
        rows = [i for i, c in enumerate(clips) if c.corpus == corpus]
        order += rng.sample(rows, min(len(rows), max(len(ravdess), 1)))
    rng.shuffle(order)
    return order


def _batch(features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(f) for f in features])
    return nn.utils.rnn.pad_sequence(features, batch_first=True), lengths


def _spec_augment(logmel: torch.Tensor, rng: random.Random) -> torch.Tensor:
    logmel = logmel.clone()
    floor = logmel.min()
    for _ in range(2):
        width = rng.randint(0, 8)
        start = rng.randint(0, logmel.shape[1] - width)
        logmel[:, start : start + width] = floor
    width = rng.randint(0, min(20, len(logmel) // 5))
    start = rng.randint(0, len(logmel) - width)
    logmel[start : start + width] = floor
    return logmel


def _crop(samples: np.ndarray, voiced: tuple[int, int], rng: random.Random, recipe: EmotionRecipe) -> np.ndarray:
    """A random stretch of the voiced part, or now and then the whole clip with its pauses,
    as whole-file predictions and loosely cut segments will hold some."""
    if rng.random() < recipe.whole_clip_share:
        return samples
    first, last = voiced
    length = min(last - first, int(rng.uniform(recipe.min_crop_s, recipe.max_crop_s) * SAMPLE_RATE))
    start = rng.randint(first, last - length)
    return samples[start : start + length]


def noise_level(rng: np.random.Generator) -> float:
    """An absolute background-noise RMS, log-uniform over 2e-4 (quiet studio) to 8e-3 (noisy room)."""
    return float(np.exp(rng.uniform(np.log(2e-4), np.log(8e-3))))


def colored_noise(length: int, rng: np.random.Generator, slope: float | None = None) -> np.ndarray:
    """Noise of unit RMS whose spectral power falls as 1 / f^(2 * slope): white (0), pink (0.5),
    brown (1), blue (-0.5); without `slope`, white, pink or brown at random."""
    white = rng.standard_normal(length)
    if slope is None:
        slope = rng.choice([0.0, 0.5, 1.0])
    if slope:
        spectrum = np.fft.rfft(white)
        spectrum[1:] /= np.arange(1, len(spectrum)) ** slope
        spectrum[0] = 0
        white = np.fft.irfft(spectrum, n=length)
    return white / (np.sqrt(np.mean(white**2)) + 1e-12)


SPEED_RANGE = (0.9, 1.1)


def speed_factor(rng: np.random.Generator, recipe: EmotionRecipe) -> float:
    """1, or for `speed_share` of the draws a factor from SPEED_RANGE by which a crop (a speaker
    group: one voice) is played faster, its pitch raised alike: a voice the corpus does not have
    (speed perturbation, Ko et al. 2015). Draws nothing while `speed_share` is 0, so recipes
    without it keep their random streams."""
    if not recipe.speed_share or rng.random() >= recipe.speed_share:
        return 1.0
    return float(rng.uniform(*SPEED_RANGE))


def at_speed(samples: np.ndarray, factor: float) -> np.ndarray:
    """`samples` played `factor` times as fast (resampled; pitch and tempo move together)."""
    if factor == 1.0:
        return samples
    return soxr.resample(samples, SAMPLE_RATE * factor, SAMPLE_RATE).astype(np.float32)


RT60_RANGE_S = (0.15, 0.8)
DIRECT_TO_REVERBERANT_DB = (-3.0, 12.0)
_ROOM_BANDS = {
    band: scipy.signal.butter(4, 2000, band, fs=SAMPLE_RATE, output="sos") for band in ("lowpass", "highpass")
}


def room_response(rng: np.random.Generator, recipe: EmotionRecipe) -> np.ndarray | None:
    """None, or for `reverb_share` of the draws a synthetic room impulse response: the direct
    sound, then after a few milliseconds a tail of noise decaying by 60 dB over a reverberation
    time from RT60_RANGE_S (its high frequencies dying sooner), at a direct-to-reverberant ratio
    from DIRECT_TO_REVERBERANT_DB. Draws nothing while `reverb_share` is 0."""
    if not recipe.reverb_share or rng.random() >= recipe.reverb_share:
        return None
    rt60, ratio_db = rng.uniform(*RT60_RANGE_S), rng.uniform(*DIRECT_TO_REVERBERANT_DB)
    delay = int(rng.uniform(0.002, 0.01) * SAMPLE_RATE)
    t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
    noise = rng.standard_normal(len(t))
    tail = sum(  # air and walls absorb the highs: above 2 kHz the tail dies twice as fast
        scipy.signal.sosfilt(_ROOM_BANDS[band], noise) * np.exp(-np.log(1000) * t / (rt60 * share))
        for band, share in (("lowpass", 1.0), ("highpass", 0.5))
    )
    tail *= 10 ** (-ratio_db / 20) / (np.sqrt(np.sum(tail**2)) + 1e-12)
    return np.concatenate([[1.0], np.zeros(delay), tail]).astype(np.float32)


def reverberate(samples: np.ndarray, response: np.ndarray | None) -> np.ndarray:
    """`samples` played in the room of `response` (its length kept, its RMS kept: the level is
    the gain's business)."""
    if response is None:
        return samples
    out = scipy.signal.fftconvolve(samples, response)[: len(samples)]
    return (out * np.sqrt(np.mean(samples**2) / (np.mean(out**2) + 1e-20))).astype(np.float32)


def _degrade(samples: np.ndarray, rng: np.random.Generator, recipe: EmotionRecipe) -> np.ndarray:
    """Speed, room, level change and background noise at an absolute level: a quiet voice in a
    noisy room ends up at a low signal-to-noise ratio, as it does in real recordings."""
    out = reverberate(at_speed(samples, speed_factor(rng, recipe)), room_response(rng, recipe))
    out = out * 10 ** (rng.uniform(-6, 6) / 20)
    if rng.random() < recipe.noise_share:
        noise_rms = noise_level(rng)
        out = out + noise_rms * colored_noise(len(out), rng)
    return out.astype(np.float32)


def describe_clips(
    network: EmotionNet | EmotionEnsemble, logmels: list[torch.Tensor], n_mfcc: int, batch_size: int = 64
) -> torch.Tensor:
    """`network.describe` of each clip's voiced part (as the pipeline scores segments), one row per clip."""
    network.eval()
    with torch.inference_mode():
        descriptions = []
        for first in range(0, len(logmels), batch_size):
            voiced = [m[slice(*voiced_span(m))] for m in logmels[first : first + batch_size]]  # as inference does
            descriptions.append(network.describe(*_batch([fused_features(m, n_mfcc) for m in voiced])))
        return torch.cat(descriptions)


def read_heads(
    network: EmotionNet | EmotionEnsemble, description: torch.Tensor, speakers: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Emotion and sentiment logits and dims from `describe_clips`' rows; with speaker context and
    `speakers`, each clip against its speaker's others (`speaker_relative`), as the pipeline
    scores named speakers."""
    with torch.inference_mode():
        relative = None
        if network.config.speaker_context and speakers is not None:
            relative = speaker_relative(description, speakers, network.config.context_min_segments)[0]
        return {key: value.numpy() for key, value in network.heads(description, relative).items()}


def predict(
    network: EmotionNet | EmotionEnsemble,
    logmels: list[torch.Tensor],
    n_mfcc: int,
    speakers: list[str] | None = None,
) -> dict[str, np.ndarray]:
    """`read_heads` of `describe_clips`: the held-out outputs, one row per clip."""
    return read_heads(network, describe_clips(network, logmels, n_mfcc), speakers)


def evaluate(predictions: dict[str, np.ndarray], clips: list[Clip], targets: np.ndarray) -> dict:
    """Held-out scores: UAR/accuracy, CCC per dimension, dimension orderings, confusion."""
    truth = [c.label for c in clips]
    predicted = [EMOTIONS[i] for i in predictions["emotion"].argmax(1)]
    sentiment_truth = [EMOTION_TO_SENTIMENT[t] for t in truth]
    sentiment_predicted = [SENTIMENTS[i] for i in predictions["sentiment"].argmax(1)]
    return {
        "clips": len(clips),
        "emotion_uar": unweighted_average_recall(truth, predicted, EMOTIONS),
        "emotion_accuracy": accuracy(truth, predicted),
        "sentiment_uar": unweighted_average_recall(sentiment_truth, sentiment_predicted, SENTIMENTS),
        "sentiment_accuracy": accuracy(sentiment_truth, sentiment_predicted),
        **dims_scores(predictions["dims"], targets, clips),
        "confusion": confusion(truth, predicted, EMOTIONS).tolist(),
    }


@dataclass(frozen=True)
class Trained:
    """A trained network and, when actors were held out, its scores and raw outputs on them."""

    network: EmotionNet | EmotionEnsemble
    scores: dict
    held_out_clips: list[Clip]
    predictions: dict[str, np.ndarray]  # logits of emotion and sentiment, dims (held-out clips)
    dims_targets: np.ndarray


class Optimisation:
    """The recipe's loss and optimiser over `train_clips` (dims targets `train_dims`, a row per
    clip): dims squared error, weighted, and unless `dims_only` emotion cross-entropy weighted by
    class and sentiment cross-entropy, both label-smoothed; AdamW on a one-cycle schedule over
    every epoch's batches; gradients clipped at norm 5."""

    def __init__(self, network: nn.Module, recipe: EmotionRecipe, train_clips: list[Clip], train_dims: torch.Tensor):
        self.network, self.recipe, self.train_dims = network, recipe, train_dims
        self.emotion_index = torch.tensor([EMOTIONS.index(c.label) for c in train_clips])
        self.sentiment_index = torch.tensor([SENTIMENTS.index(EMOTION_TO_SENTIMENT[c.label]) for c in train_clips])
        counts = torch.bincount(self.emotion_index, minlength=len(EMOTIONS)).float().clamp(min=1)
        self.optimizer = torch.optim.AdamW(network.parameters(), lr=recipe.learning_rate, weight_decay=1e-2)
        steps = recipe.epochs * math.ceil(len(_balanced_epoch(train_clips, random.Random(0))) / recipe.batch_size)
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(self.optimizer, recipe.learning_rate, total_steps=steps)
        self.emotion_loss = nn.CrossEntropyLoss(weight=counts.sum() / (len(EMOTIONS) * counts), label_smoothing=0.1)
        self.sentiment_loss = nn.CrossEntropyLoss(label_smoothing=0.1)

    def loss(self, out: dict[str, torch.Tensor], batch: list[int]) -> torch.Tensor:
        """The loss of the network's outputs on the training clips at indices `batch`."""
        loss = self.recipe.dims_loss_weight * nn.functional.mse_loss(out["dims"], self.train_dims[batch])
        if not self.recipe.dims_only:
            loss = loss + self.emotion_loss(out["emotion"], self.emotion_index[batch])
            loss = loss + self.sentiment_loss(out["sentiment"], self.sentiment_index[batch])
        return loss

    def step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.network.parameters(), 5.0)
        self.optimizer.step()
        self.schedule.step()


@dataclass(frozen=True)
class _Material:
    """What training batches are cut from: the training clips, their waveforms and voiced spans."""

    clips: list[Clip]
    waveforms: dict[Path, np.ndarray]
    voiced: dict[Path, tuple[int, int]]
    front_end: LogMel

    def crop(self, index: int, rng: random.Random, recipe: EmotionRecipe) -> np.ndarray:
        path = self.clips[index].path
        return _crop(self.waveforms[path], self.voiced[path], rng, recipe)


def _plain_epoch(network, optimisation, material, recipe, rng, noise_rng) -> tuple[float, int]:
    """One epoch of batches of clips each in a recording condition of its own: (summed loss, clips)."""
    order, total = _balanced_epoch(material.clips, rng), 0.0
    n_mfcc = material.front_end.config.n_mfcc
    for first in range(0, len(order), recipe.batch_size):
        batch = order[first : first + recipe.batch_size]
        crops = [_degrade(material.crop(i, rng, recipe), noise_rng, recipe) for i in batch]
        with torch.no_grad():
            padded = material.front_end.frames(
                torch.from_numpy(np.stack([np.pad(c, (0, max(map(len, crops)) - len(c))) for c in crops]))
            )
        logmel_crops = [_spec_augment(m[: material.front_end.frame_count(len(c))], rng) for m, c in zip(padded, crops)]
        loss = optimisation.loss(network(*_batch([fused_features(m, n_mfcc) for m in logmel_crops])), batch)
        optimisation.step(loss)
        total += loss.item() * len(batch)
    return total, len(order)


CONTEXT_GROUP = 8  # crops of one speaker in one recording condition, read against each other
CONTEXT_DROPOUT = 0.2  # share of groups trained without their context, as for unknown speakers


def _speaker_groups(clips: list[Clip], rng: random.Random, batch_size: int) -> list[list[list[int]]]:
    """The balanced epoch regrouped into runs of up to CONTEXT_GROUP clips of one speaker (at
    least two), shuffled, and batched: a batch closes at `batch_size` clips or more, so there
    are never more batches than the plain epoch's (the learning-rate schedule counts those)."""
    by_speaker: dict[str, list[int]] = {}
    for i in _balanced_epoch(clips, rng):
        by_speaker.setdefault(clips[i].speaker, []).append(i)
    groups = []
    for rows in by_speaker.values():
        chunks = [rows[k : k + CONTEXT_GROUP] for k in range(0, len(rows), CONTEXT_GROUP)]
        if len(chunks) > 1 and len(chunks[-1]) < 2:
            chunks[-2] += chunks.pop()
        groups += [c for c in chunks if len(c) >= 2]
    rng.shuffle(groups)
    batches, current = [], []
    for group in groups:
        current.append(group)
        if sum(map(len, current)) >= batch_size:
            batches.append(current)
            current = []
    return batches + [current] if current else batches


def noise_bed(rng: np.random.Generator) -> np.ndarray:
    """30 s of one room's background noise: one colour, at an absolute level from the recipe's range."""
    return (noise_level(rng) * colored_noise(30 * SAMPLE_RATE, rng)).astype(np.float32)


def recording_condition(rng: np.random.Generator, recipe: EmotionRecipe) -> tuple[float, np.ndarray | None]:
    """One recording condition: a gain, and (for `noise_share` of them) a `noise_bed` that a
    speaker's crops are laid over."""
    gain = 10 ** (rng.uniform(-6, 6) / 20)
    if rng.random() >= recipe.noise_share:
        return gain, None
    return gain, noise_bed(rng)


def in_condition(samples: np.ndarray, condition: tuple[float, np.ndarray | None], rng: np.random.Generator):
    """`samples` at the condition's gain, over a stretch of its noise bed (if any) from a random start."""
    gain, noise = condition
    out = samples * gain
    if noise is not None:
        noise = np.tile(noise, -(-len(out) // len(noise)))
        start = rng.integers(0, len(noise) - len(out) + 1)
        out = out + noise[start : start + len(out)]
    return out.astype(np.float32)


def _context_epoch(network, optimisation, material, recipe, rng, noise_rng) -> tuple[float, int]:
    """One epoch of batches of speaker groups (`_speaker_groups`), each group's crops in one
    recording condition and read against each other (leave-one-out, `speaker_relative`); the
    level is of the crop before SpecAugment. One group in five goes without its context."""
    total, seen, n_mfcc = 0.0, 0, material.front_end.config.n_mfcc
    for groups in _speaker_groups(material.clips, rng, recipe.batch_size):
        features, levels, batch, speakers, keep = [], [], [], [], []
        for number, group in enumerate(groups):
            condition, speed = recording_condition(noise_rng, recipe), speed_factor(noise_rng, recipe)
            room = room_response(noise_rng, recipe)
            given = rng.random() >= CONTEXT_DROPOUT
            for i in group:
                crop = reverberate(at_speed(material.crop(i, rng, recipe), speed), room)
                logmel = material.front_end.frames(torch.from_numpy(in_condition(crop, condition, noise_rng)))
                levels.append(utterance_level(fused_features(logmel, n_mfcc), recipe.network.n_mels))
                features.append(fused_features(_spec_augment(logmel, rng), n_mfcc))
                batch.append(i)
                speakers.append(number)
                keep.append(given)
        description = torch.cat([network.embed(*_batch(features)), torch.stack(levels)], 1)
        relative = speaker_relative(description, speakers, 2)[0] * torch.tensor(keep, dtype=torch.float32)[:, None]
        loss = optimisation.loss(network.heads(description, relative), batch)
        optimisation.step(loss)
        total += loss.item() * len(batch)
        seen += len(batch)
    return total, seen


def _train_member(recipe: EmotionRecipe, threads: int) -> dict[str, torch.Tensor]:
    """One member of an ensemble, trained in a process of its own: its weights."""
    torch.set_num_threads(threads)
    trained = train(
        replace(recipe, members=1), log=lambda message: print(f"[seed {recipe.seed}] {message}", flush=True)
    )
    return trained.network.state_dict()


def _train_ensemble(recipe: EmotionRecipe, log=print) -> Trained:
    """`recipe.members` networks trained side by side (seeds seed, seed + 1, ...), averaged, and
    the ensemble scored on the held-out actors."""
    from ser_pipeline.training.crossval import fold_threads, run_folds

    log(f"{recipe.members} members side by side, {fold_threads(recipe.members)} torch thread(s) each")
    states = run_folds(
        _train_member, [replace(recipe, seed=recipe.seed + k) for k in range(recipe.members)], recipe.members
    )
    ensemble = EmotionEnsemble(EmotionEnsembleConfig(**asdict(recipe.network), members=recipe.members))
    for member, state in zip(ensemble.members, states, strict=True):
        member.load_state_dict(state)
    test_clips = _held_out_clips(recipe)[1]
    if not test_clips:
        return Trained(ensemble.eval(), {}, [], {}, np.empty((0, len(DIMENSIONS)), np.float32))
    front_end = LogMel(FrontEndConfig())
    samples = [read_clip(c.path) for c in test_clips]
    logmels = [front_end.episode(x, torch.device("cpu")) for x in samples]
    lexicon = recipe.data / "lexicon" / "emotion_vad.csv"
    test_dims = derived_dims(lexicon, test_clips, samples, recipe.acoustic_arousal_weight)  # z-scored per speaker
    return _scored(ensemble.eval(), logmels, test_clips, test_dims, front_end.config.n_mfcc)


def _held_out_clips(recipe: EmotionRecipe) -> tuple[list[Clip], list[Clip]]:
    """Training clips and the held-out actors' clips."""
    held_out = ravdess_voices(recipe.held_out_actors)
    readers = {"ravdess": ravdess_clips, "tess": tess_clips, "nemo": nemo_clips}
    unknown = set(recipe.corpora) - set(readers)
    if unknown:
        raise ValueError(f"unknown corpora {sorted(unknown)}: choose from {', '.join(readers)}")
    clips = [c for name in recipe.corpora for c in readers[name](recipe.data) if in_split(c, "dev")]
    if recipe.clips_limit:
        clips = random.Random(0).sample(clips, recipe.clips_limit)  # the same subset whatever the seed
    return [c for c in clips if c.speaker not in held_out], [c for c in clips if c.speaker in held_out]


def _scored(network, logmels: list[torch.Tensor], clips: list[Clip], dims: np.ndarray, n_mfcc: int) -> Trained:
    """The held-out scores: with speaker context (the clips' speakers named) where the network
    reads it, and then also the UARs with the context withheld."""
    description = describe_clips(network, logmels, n_mfcc)  # once, for both readings
    predictions = read_heads(network, description, [c.speaker for c in clips])
    scores = evaluate(predictions, clips, dims)
    if network.config.speaker_context:
        alone = evaluate(read_heads(network, description), clips, dims)
        scores["context_withheld"] = {k: alone[k] for k in ("emotion_uar", "sentiment_uar")}
    return Trained(network, scores, clips, predictions, dims)


def train(recipe: EmotionRecipe, log=print) -> Trained:
    """Train on everything but the held-out actors; score the held-out actors' clips."""
    if recipe.members > 1:
        return _train_ensemble(recipe, log)
    random.seed(recipe.seed)
    np.random.seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    rng = random.Random(recipe.seed)
    front_end_config = FrontEndConfig()
    front_end = LogMel(front_end_config)
    train_clips, test_clips = _held_out_clips(recipe)
    clips = train_clips + test_clips
    log(f"features for {len(clips)} clips ({len(train_clips)} train, {len(test_clips)} held-out) ...")
    samples = [read_clip(c.path) for c in clips]
    logmels = {c.path: front_end.episode(x, torch.device("cpu")) for c, x in zip(clips, samples)}
    log("acoustic arousal evidence (loudness, pitch level and range) ...")
    lexicon = recipe.data / "lexicon" / "emotion_vad.csv"
    targets = dict(zip((c.path for c in clips), derived_dims(lexicon, clips, samples, recipe.acoustic_arousal_weight)))
    hop = front_end_config.hop_length
    material = _Material(
        train_clips,
        {c.path: x for c, x in zip(clips, samples)},
        {path: tuple(hop * f for f in voiced_span(m)) for path, m in logmels.items()},
        front_end,
    )
    noise_rng = np.random.default_rng(recipe.seed)
    train_dims = torch.from_numpy(np.stack([targets[c.path] for c in train_clips]))
    test_dims = np.stack([targets[c.path] for c in test_clips]) if test_clips else np.empty((0, len(DIMENSIONS)))
    network = EmotionNet(recipe.network)
    optimisation = Optimisation(network, recipe, train_clips, train_dims)
    epoch_of = _context_epoch if recipe.network.speaker_context else _plain_epoch
    test_logmels = [logmels[c.path] for c in test_clips]
    for epoch in range(recipe.epochs):
        network.train()
        total, seen = epoch_of(network, optimisation, material, recipe, rng, noise_rng)
        message = f"epoch {epoch + 1}/{recipe.epochs} loss {total / seen:.3f}"
        if test_clips and ((epoch + 1) % recipe.eval_every == 0 or epoch + 1 == recipe.epochs):
            scores = _scored(network, test_logmels, test_clips, test_dims, front_end_config.n_mfcc).scores
            message += (
                f" | held-out UAR {scores['emotion_uar']:.3f} sentiment UAR {scores['sentiment_uar']:.3f}"
                f" CCC V {scores['valence_ccc']:.3f} A {scores['arousal_ccc']:.3f} D {scores['dominance_ccc']:.3f}"
                f" orderings {sum(scores['orderings'].values())}/{len(scores['orderings'])}"
            )
        log(message)
    if not test_clips:
        return Trained(network.eval(), {}, [], {}, test_dims)
    return _scored(network.eval(), test_logmels, test_clips, test_dims, front_end_config.n_mfcc)
