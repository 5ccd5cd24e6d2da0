"""Recipe: the embedded emotion network (7 emotions, 3 sentiments, valence/arousal/dominance).

Trained on RAVDESS (actors not held out) and TESS; evaluated on held-out RAVDESS actors at
clip level, so the scores are speaker-independent. Dimensional targets are derived, not
rated: each class's NRC VAD lexicon coordinates, with RAVDESS intensity moving arousal.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ser_pipeline.architectures import EmotionNet, EmotionNetConfig
from ser_pipeline.features import FrontEndConfig, LogMel, fused_features
from ser_pipeline.metrics import accuracy, concordance_correlation, confusion, unweighted_average_recall
from ser_pipeline.schema import DIMENSIONS, EMOTION_TO_SENTIMENT, EMOTIONS, SENTIMENTS
from ser_pipeline.training.data import Clip, clip_logmels, ravdess_clips, tess_clips, voiced_span

# Every RAVDESS voice in ../shared/data/episodes: holding them out makes the episode check
# speaker-independent too. Two male (odd) and two female (even) actors plus one more male.
DEFAULT_HELD_OUT_ACTORS: tuple[int, ...] = (1, 2, 5, 8, 11)
INTENSITY_AROUSAL_SHIFT = 0.1


@dataclass(frozen=True)
class EmotionRecipe:
    data: Path
    held_out_actors: tuple[int, ...] = DEFAULT_HELD_OUT_ACTORS
    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 2e-3
    seed: int = 0
    min_crop_s: float = 1.0
    max_crop_s: float = 4.0
    dims_loss_weight: float = 5.0
    whole_clip_share: float = 0.3
    eval_every: int = 5
    clips_limit: int | None = None  # a small subset, for smoke tests of the recipe
    network: EmotionNetConfig = field(default_factory=EmotionNetConfig)


def vad_targets(lexicon_csv: Path, clips: list[Clip]) -> np.ndarray:
    """(clips, 3) valence/arousal/dominance targets from the lexicon, intensity moving arousal."""
    with lexicon_csv.open() as handle:
        lexicon = {row["word"]: row for row in csv.DictReader(handle)}
    targets = []
    for clip in clips:
        row = lexicon[clip.lexicon_word or clip.label]
        valence, arousal, dominance = (float(row[d]) for d in DIMENSIONS)
        if clip.corpus == "ravdess" and clip.label != "neutral":
            arousal += INTENSITY_AROUSAL_SHIFT if clip.intensity == "strong" else -INTENSITY_AROUSAL_SHIFT
        targets.append([valence, min(max(arousal, 0.0), 1.0), dominance])
    return np.asarray(targets, dtype=np.float32)


def _balanced_epoch(clips: list[Clip], rng: random.Random) -> list[int]:
    """Every RAVDESS clip and as many TESS clips, drawn afresh each epoch: TESS holds three
    times more clips from only two speakers, and left alone it would teach their voices."""
    ravdess = [i for i, c in enumerate(clips) if c.corpus == "ravdess"]
    tess = [i for i, c in enumerate(clips) if c.corpus != "ravdess"]
    order = ravdess + rng.sample(tess, min(len(tess), max(len(ravdess), 1)))
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


def _crop(
    logmel: torch.Tensor, voiced: tuple[int, int], rng: random.Random, recipe: EmotionRecipe, fps: float
) -> torch.Tensor:
    """A random stretch of the voiced part, or now and then the whole clip with its pauses,
    as whole-file predictions and loosely cut segments will hold some."""
    if rng.random() < recipe.whole_clip_share:
        return logmel
    first, last = voiced
    length = min(last - first, int(rng.uniform(recipe.min_crop_s, recipe.max_crop_s) * fps))
    start = rng.randint(first, last - length)
    return logmel[start : start + length]


def predict(
    network: EmotionNet, logmels: list[torch.Tensor], n_mfcc: int, batch_size: int = 64
) -> dict[str, np.ndarray]:
    """Emotion and sentiment probabilities and dims, one row per whole clip."""
    network.eval()
    outputs: dict[str, list[np.ndarray]] = {"emotion": [], "sentiment": [], "dims": []}
    with torch.inference_mode():
        for first in range(0, len(logmels), batch_size):
            features, lengths = _batch([fused_features(m, n_mfcc) for m in logmels[first : first + batch_size]])
            result = network(features, lengths)
            outputs["emotion"].append(torch.softmax(result["emotion"], -1).numpy())
            outputs["sentiment"].append(torch.softmax(result["sentiment"], -1).numpy())
            outputs["dims"].append(result["dims"].numpy())
    return {key: np.concatenate(value) for key, value in outputs.items()}


def evaluate(predictions: dict[str, np.ndarray], clips: list[Clip], targets: np.ndarray) -> dict:
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
        **{
            f"{d}_ccc": concordance_correlation(targets[:, i], predictions["dims"][:, i])
            for i, d in enumerate(DIMENSIONS)
        },
        "confusion": confusion(truth, predicted, EMOTIONS).tolist(),
    }


def train(recipe: EmotionRecipe, log=print) -> tuple[EmotionNet, dict]:
    """Train on everything but the held-out actors; return the network and held-out scores."""
    random.seed(recipe.seed)
    np.random.seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    rng = random.Random(recipe.seed)
    front_end_config = FrontEndConfig()
    front_end = LogMel(front_end_config)
    held_out = {f"ravdess-{a:02d}" for a in recipe.held_out_actors}
    clips = ravdess_clips(recipe.data) + tess_clips(recipe.data)
    if recipe.clips_limit:
        clips = rng.sample(clips, recipe.clips_limit)
    train_clips = [c for c in clips if c.speaker not in held_out]
    test_clips = [c for c in clips if c.speaker in held_out]
    log(f"features for {len(clips)} clips ({len(train_clips)} train, {len(test_clips)} held-out) ...")
    logmels = {c.path: m for c, m in zip(clips, clip_logmels(clips, front_end))}
    voiced = {path: voiced_span(m) for path, m in logmels.items()}
    lexicon = recipe.data / "lexicon" / "emotion_vad.csv"
    train_dims = torch.from_numpy(vad_targets(lexicon, train_clips))
    test_dims = vad_targets(lexicon, test_clips)
    emotion_index = torch.tensor([EMOTIONS.index(c.label) for c in train_clips])
    sentiment_index = torch.tensor([SENTIMENTS.index(EMOTION_TO_SENTIMENT[c.label]) for c in train_clips])
    counts = torch.bincount(emotion_index, minlength=len(EMOTIONS)).float().clamp(min=1)
    class_weights = counts.sum() / (len(EMOTIONS) * counts)

    network = EmotionNet(recipe.network)
    optimizer = torch.optim.AdamW(network.parameters(), lr=recipe.learning_rate, weight_decay=1e-2)
    steps = recipe.epochs * math.ceil(len(_balanced_epoch(train_clips, random.Random(0))) / recipe.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, recipe.learning_rate, total_steps=steps)
    emotion_loss = nn.CrossEntropyLoss(weight=class_weights, label_smoothing=0.1)
    sentiment_loss = nn.CrossEntropyLoss(label_smoothing=0.1)
    fps = front_end_config.frames_per_second
    for epoch in range(recipe.epochs):
        network.train()
        order = _balanced_epoch(train_clips, rng)
        total = 0.0
        for first in range(0, len(order), recipe.batch_size):
            batch = order[first : first + recipe.batch_size]
            crops = [
                _spec_augment(_crop(logmels[train_clips[i].path], voiced[train_clips[i].path], rng, recipe, fps), rng)
                for i in batch
            ]
            features, lengths = _batch([fused_features(m, front_end_config.n_mfcc) for m in crops])
            out = network(features, lengths)
            loss = (
                emotion_loss(out["emotion"], emotion_index[batch])
                + sentiment_loss(out["sentiment"], sentiment_index[batch])
                + recipe.dims_loss_weight * nn.functional.mse_loss(out["dims"], train_dims[batch])
            )
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(network.parameters(), 5.0)
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        message = f"epoch {epoch + 1}/{recipe.epochs} loss {total / len(order):.3f}"
        if test_clips and ((epoch + 1) % recipe.eval_every == 0 or epoch + 1 == recipe.epochs):
            scores = evaluate(
                predict(network, [logmels[c.path] for c in test_clips], front_end_config.n_mfcc), test_clips, test_dims
            )
            message += f" | held-out UAR {scores['emotion_uar']:.3f} sentiment UAR {scores['sentiment_uar']:.3f}"
        log(message)
    if not test_clips:
        return network.eval(), {}
    scores = evaluate(
        predict(network, [logmels[c.path] for c in test_clips], front_end_config.n_mfcc), test_clips, test_dims
    )
    return network.eval(), scores
