"""The recipe of the Whisper emotion head (`whisper_emotion.WhisperEmotionHead`).

Every training clip is described by the frozen Whisper tiny.en encoder (each layer's frame mean
and spread), clean and in `noisy_copies` recording conditions (per speaker and copy one room,
one gain and, for most, one noise bed, as an episode gives one voice one room); two multinomial
logistic regressions are fitted on those descriptions: one on the descriptions standardised
over all training clips (the reading of a clip alone), one on the descriptions z-scored within
each speaker in each condition (the reading against the speaker's other utterances). Training speakers are development speakers only: RAVDESS without the held-out
actors, TESS, and nEMO's development speakers (never its final-test speakers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ser_pipeline.schema import EMOTIONS
from ser_pipeline.training.data import (
    HELD_OUT_ACTORS,
    Clip,
    nemo_clips,
    ravdess_clips,
    ravdess_voices,
    read_clip,
    tess_clips,
)
from ser_pipeline.whisper_emotion import (
    WhisperEmotionHead,
    WhisperHeadConfig,
    describe_many,
    speaker_zscored,
    standardisation,
)

Log = Callable[[str], None]


@dataclass(frozen=True)
class WhisperHeadRecipe:
    data: Path
    corpora: tuple[str, ...] = ("ravdess", "tess", "nemo")
    held_out_actors: tuple[int, ...] = HELD_OUT_ACTORS
    regularisation: float = 0.01  # logistic regression C (inverse strength), chosen on development speakers
    noisy_copies: int = 2  # recording conditions each clip is also described in
    noise_share: float = 0.7  # of the conditions with a noise bed (the emotion recipe's)
    reverb_share: float = 0.5  # of the conditions in a synthetic room
    seed: int = 0
    config: WhisperHeadConfig = field(default_factory=WhisperHeadConfig)


def training_clips(recipe: WhisperHeadRecipe) -> list[Clip]:
    """Development clips of the recipe's corpora, held-out RAVDESS actors and nEMO's final test left out."""
    from ser_pipeline.clip_evaluation import in_split

    readers = {"ravdess": ravdess_clips, "tess": tess_clips, "nemo": nemo_clips}
    held_out = ravdess_voices(recipe.held_out_actors)
    clips = [clip for corpus in recipe.corpora for clip in readers[corpus](recipe.data)]
    return [c for c in clips if c.speaker not in held_out and in_split(c, "dev")]


@dataclass(frozen=True)
class Condition:
    """A recording condition shared by one speaker's clips: a room's impulse response (None: dry)
    and the emotion recipe's `recording_condition` (a gain, a noise bed or None)."""

    room: np.ndarray | None
    level: tuple[float, np.ndarray | None]

    def apply(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        from ser_pipeline.training.emotion import in_condition, reverberate

        return in_condition(reverberate(samples, self.room), self.level, rng)


def conditions(speakers: list[str], recipe: WhisperHeadRecipe, rng: np.random.Generator) -> dict[str, Condition]:
    """One recording condition per speaker, drawn as the emotion recipe draws them."""
    from ser_pipeline.training.emotion import EmotionRecipe, recording_condition, room_response

    shares = EmotionRecipe(data=recipe.data, reverb_share=recipe.reverb_share, noise_share=recipe.noise_share)
    return {
        speaker: Condition(room_response(rng, shares), recording_condition(rng, shares))
        for speaker in sorted(set(speakers))
    }


def clip_descriptions(
    clips: list[Clip],
    device: torch.device,
    log: Log = print,
    condition: dict[str, Condition] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """(clips, n_features) Whisper descriptions, each clip read whole (in its speaker's condition, if given)."""
    from ser_pipeline.whisper_encoder import load_encoder

    encoder, rng = load_encoder(device), np.random.default_rng(seed)
    rows = []
    for first in range(0, len(clips), 250):
        batch = clips[first : first + 250]
        audio = [read_clip(c.path) for c in batch]
        if condition is not None:
            audio = [condition[c.speaker].apply(samples, rng) for c, samples in zip(batch, audio, strict=True)]
        rows.append(describe_many(encoder, audio, device, fast=False))
        log(f"  described {min(first + 250, len(clips))}/{len(clips)} clips")
    return np.concatenate(rows).astype(np.float32)


def _linear(descriptions: np.ndarray, labels: list[str], regularisation: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights (7, n) and biases (7,) of a logistic regression, in `EMOTIONS` order (a class absent
    from training gets a bias far below the others: never predicted)."""
    from sklearn.linear_model import LogisticRegression

    fitted = LogisticRegression(C=regularisation, max_iter=500).fit(descriptions, labels)
    weights = np.zeros((len(EMOTIONS), descriptions.shape[1]), np.float32)
    biases = np.full(len(EMOTIONS), -30.0, np.float32)
    for row, label in enumerate(fitted.classes_):
        weights[EMOTIONS.index(label)] = fitted.coef_[row]
        biases[EMOTIONS.index(label)] = fitted.intercept_[row]
    return weights, biases


def lexicon_coordinates(lexicon_csv: Path) -> np.ndarray:
    """(7, 3) each emotion's valence, arousal and dominance in the NRC VAD lexicon."""
    import csv

    from ser_pipeline.schema import DIMENSIONS

    with lexicon_csv.open() as handle:
        rows = {row["word"]: row for row in csv.DictReader(handle)}
    return np.array([[float(rows[e][d]) for d in DIMENSIONS] for e in EMOTIONS], np.float32)


def fit_head(
    descriptions: np.ndarray, labels: list[str], speakers: list[str], recipe: WhisperHeadRecipe
) -> WhisperEmotionHead:
    """Both readings fitted on the same clips (every training speaker has many more clips than
    `min_segments`)."""
    head = WhisperEmotionHead(recipe.config)
    mean, scale = standardisation(descriptions)
    alone = _linear((descriptions - mean) / scale, labels, recipe.regularisation)
    zscored, rows = speaker_zscored(descriptions, list(speakers), recipe.config.min_segments)
    if len(rows) != len(labels):
        raise ValueError(f"every training speaker needs at least {recipe.config.min_segments} clips")
    against_speaker = _linear(zscored, labels, recipe.regularisation)
    with torch.no_grad():
        head.lexicon.copy_(torch.from_numpy(lexicon_coordinates(recipe.data / "lexicon" / "emotion_vad.csv")))
        head.mean.copy_(torch.from_numpy(mean))
        head.scale.copy_(torch.from_numpy(scale))
        for layer, (weights, biases) in ((head.alone, alone), (head.speaker, against_speaker)):
            layer.weight.copy_(torch.from_numpy(weights))
            layer.bias.copy_(torch.from_numpy(biases))
    return head.eval()


def train_head(recipe: WhisperHeadRecipe, device: torch.device, log: Log = print) -> WhisperEmotionHead:
    clips = training_clips(recipe)
    speakers = [c.speaker for c in clips]
    log(f"describing {len(clips)} development clips of {len(set(speakers))} speakers with Whisper")
    rng = np.random.default_rng(recipe.seed)
    described = [clip_descriptions(clips, device, log)]
    for copy in range(recipe.noisy_copies):
        log(f"  in recording conditions, copy {copy + 1}/{recipe.noisy_copies}")
        described.append(clip_descriptions(clips, device, log, conditions(speakers, recipe, rng), seed=copy))
    # A speaker in each condition is a voice of its own: z-scored over its clips in that condition.
    voices = [f"{speaker}#{copy}" for copy in range(len(described)) for speaker in speakers]
    return fit_head(np.concatenate(described), [c.label for c in clips] * len(described), voices, recipe)
