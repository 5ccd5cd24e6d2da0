"""Leave-k-actors-out cross-validation of the emotion recipe, temperature scaling and the
calibration of the dims.

Each fold trains the recipe from scratch without its k RAVDESS actors (TESS is always in
training: its two speakers say nothing about unseen ones) and scores their clips. The folds'
held-out outputs together cover every actor exactly once; the pooled scores and the confusion
matrix are computed on them, and so are the temperatures that calibrate the probabilities.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context
from typing import Any

import numpy as np
import scipy.optimize
import scipy.special

from ser_pipeline.architectures import calibrate_dims
from ser_pipeline.schema import EMOTION_TO_SENTIMENT, EMOTIONS, SENTIMENTS
from ser_pipeline.training.data import Clip
from ser_pipeline.training.emotion import EmotionRecipe, evaluate

RAVDESS_ACTORS = tuple(range(1, 21))


def actor_folds(actors: tuple[int, ...] = RAVDESS_ACTORS, size: int = 4) -> list[tuple[int, ...]]:
    """Consecutive groups of `size` actors (01-04, 05-08, ...): each holds both sexes, as RAVDESS
    actors alternate male (odd) and female (even)."""
    if len(actors) % size:
        raise ValueError(f"{len(actors)} actors do not split into folds of {size}")
    return [tuple(actors[i : i + size]) for i in range(0, len(actors), size)]


@dataclass(frozen=True)
class FoldResult:
    held_out: tuple[int, ...]
    scores: dict
    clips: list[Clip]
    predictions: dict[str, np.ndarray]
    dims_targets: np.ndarray


def _run_fold(recipe: EmotionRecipe, threads: int) -> FoldResult:
    import torch

    from ser_pipeline.training.emotion import train

    torch.set_num_threads(threads)
    tag = "actors " + ",".join(f"{a:02d}" for a in recipe.held_out_actors)
    trained = train(recipe, log=lambda message: print(f"[{tag}] {message}", flush=True))
    return FoldResult(
        recipe.held_out_actors, trained.scores, trained.held_out_clips, trained.predictions, trained.dims_targets
    )


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of logits / temperature."""
    return scipy.special.softmax(np.asarray(logits) / temperature, axis=1)


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean -log softmax(logits / T)[label]."""
    log_probs = scipy.special.log_softmax(np.asarray(logits, np.float64) / temperature, axis=1)
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T in 0.05..20 minimising the negative log-likelihood of softmax(logits / T),
    by a bounded scalar search over log T (the likelihood is smooth and, in log T, unimodal)."""
    result = scipy.optimize.minimize_scalar(
        lambda log_t: negative_log_likelihood(logits, labels, float(np.exp(log_t))),
        bounds=(np.log(0.05), np.log(20.0)),
        method="bounded",
        options={"xatol": 1e-5},
    )
    return float(np.exp(result.x))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Mean |confidence - accuracy| over equal-width confidence bins, weighted by their size."""
    confidence, predicted = probs.max(axis=1), probs.argmax(axis=1)
    correct = predicted == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    return float(
        sum(
            abs(confidence[which == b].mean() - correct[which == b].mean()) * (which == b).sum()
            for b in range(bins)
            if (which == b).any()
        )
        / len(labels)
    )


@dataclass(frozen=True)
class CrossValidation:
    folds: list[FoldResult]
    pooled: dict  # scores of all folds' held-out outputs together
    temperatures: dict[str, float]  # per head, fitted on the pooled held-out logits
    calibration: dict[str, dict[str, float]]  # per head: NLL and ECE before and after

    @property
    def per_fold_means(self) -> dict[str, tuple[float, float]]:
        """Mean and standard deviation over folds of each scalar score."""
        keys = [k for k, v in self.folds[0].scores.items() if isinstance(v, float)]
        values = {k: [f.scores[k] for f in self.folds] for k in keys}
        return {k: (float(np.mean(v)), float(np.std(v))) for k, v in values.items()}


def _pool(folds: list[FoldResult]) -> tuple[list[Clip], dict[str, np.ndarray], np.ndarray]:
    clips = [c for f in folds for c in f.clips]
    predictions = {k: np.concatenate([f.predictions[k] for f in folds]) for k in folds[0].predictions}
    return clips, predictions, np.concatenate([f.dims_targets for f in folds])


def calibrate(clips: list[Clip], predictions: dict[str, np.ndarray]) -> tuple[dict, dict]:
    labels = {
        "emotion": np.array([EMOTIONS.index(c.label) for c in clips]),
        "sentiment": np.array([SENTIMENTS.index(EMOTION_TO_SENTIMENT[c.label]) for c in clips]),
    }
    temperatures, calibration = {}, {}
    for head, truth in labels.items():
        temperatures[head], calibration[head] = calibrate_head(predictions[head], truth)
    return temperatures, calibration


def calibrate_head(logits: np.ndarray, labels) -> tuple[float, dict[str, float]]:
    """The fitted temperature, and NLL and ECE before and after it."""
    labels = np.asarray(labels)
    temperature = round(fit_temperature(logits, labels), 4)
    return temperature, {
        "nll_before": negative_log_likelihood(logits, labels),
        "nll_after": negative_log_likelihood(logits, labels, temperature),
        "ece_before": expected_calibration_error(softmax(logits), labels),
        "ece_after": expected_calibration_error(softmax(logits, temperature), labels),
    }


def fit_dims_affine(predicted: np.ndarray, targets: np.ndarray) -> dict[str, list[float]]:
    """Per dimension, the affine map that gives held-out predictions the targets' mean and
    spread. A regressor trained on squared error pulls its outputs towards the mean; for a given
    correlation, concordance (CCC) is highest when mean and spread match, so this is to the
    dims what a temperature is to the probabilities. See `architectures.calibrate_dims`."""
    predicted, targets = np.asarray(predicted, np.float64), np.asarray(targets, np.float64)
    scale = targets.std(0) / np.maximum(predicted.std(0), 1e-6)
    shift = targets.mean(0) - scale * predicted.mean(0)
    return {"scale": np.round(scale, 4).tolist(), "shift": np.round(shift, 4).tolist()}


def nested_dims_calibration(predicted: np.ndarray, targets: np.ndarray, folds: np.ndarray, fit_on=None) -> np.ndarray:
    """Each fold's predictions calibrated by the affine fitted on the other folds (`fit_on`,
    default `predicted`: the outputs it is fitted to), so the calibrated CCC is held out too."""
    fit_on = predicted if fit_on is None else fit_on
    calibrated = np.empty_like(predicted)
    for fold in np.unique(folds):
        rows = folds == fold
        calibrated[rows] = calibrate_dims(predicted[rows], fit_dims_affine(fit_on[~rows], targets[~rows]))
    return calibrated


def fold_threads(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // jobs)


def run_folds(task: Callable[[Any, int], Any], folds: list, jobs: int) -> list:
    """`task(fold, torch_threads)` for every fold, `jobs` at a time in separate (spawned)
    processes sharing the cores, or here when `jobs` is 1; results in fold order."""
    threads = fold_threads(jobs)
    if jobs == 1:
        return [task(fold, threads) for fold in folds]
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        return list(pool.map(task, folds, [threads] * len(folds)))


def cross_validate(recipe: EmotionRecipe, folds: list[tuple[int, ...]], jobs: int = 1, log=print) -> CrossValidation:
    """Train and score one model per fold (`jobs` at a time, in separate processes sharing the
    cores), then pool their held-out outputs."""
    recipes = [replace(recipe, held_out_actors=fold) for fold in folds]
    log(f"{len(folds)} folds, {jobs} at a time, {fold_threads(jobs)} torch thread(s) each")
    results = run_folds(_run_fold, recipes, jobs)
    clips, predictions, targets = _pool(results)
    temperatures, calibration = calibrate(clips, predictions)
    return CrossValidation(results, evaluate(predictions, clips, targets), temperatures, calibration)


def to_json(cv: CrossValidation, recipe: EmotionRecipe, command: str) -> dict:
    """Everything measured, per-clip outputs included, so reports can be redrawn without training."""

    def floats(scores: dict) -> dict:
        return {k: v for k, v in scores.items() if k != "confusion"}

    return {
        "command": command,
        "recipe": {
            "epochs": recipe.epochs,
            "seed": recipe.seed,
            "batch_size": recipe.batch_size,
            "speaker_context": recipe.network.speaker_context,
            "members": recipe.members,
            "noise_share": recipe.noise_share,
            "speed_share": recipe.speed_share,
            "reverb_share": recipe.reverb_share,
        },
        "folds": [
            {
                "held_out": list(f.held_out),
                "scores": floats(f.scores),
                "confusion": f.scores["confusion"],
                "clips": [{"file": c.path.name, "speaker": c.speaker, "label": c.label} for c in f.clips],
                "predictions": {k: np.round(v, 5).tolist() for k, v in f.predictions.items()},
                "dims_targets": np.round(f.dims_targets, 5).tolist(),
            }
            for f in cv.folds
        ],
        "pooled": floats(cv.pooled),
        "confusion": cv.pooled["confusion"],
        "per_fold_means": cv.per_fold_means,
        "temperatures": cv.temperatures,
        "calibration": cv.calibration,
    }
