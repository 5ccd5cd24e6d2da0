"""Evaluation metrics shared by the training recipes and the evaluation commands."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sklearn.metrics


def confusion(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Counts, rows = true label, columns = predicted label, in `labels` order."""
    return sklearn.metrics.confusion_matrix(list(truth), list(predicted), labels=list(labels))


def unweighted_average_recall(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> float:
    """Mean per-class recall over the classes present in `truth` (chance = 1 / classes)."""
    held = set(truth)
    present = [label for label in labels if label in held]
    return float(
        sklearn.metrics.recall_score(list(truth), list(predicted), labels=present, average="macro", zero_division=0)
    )


def uar_difference_interval(
    truth: Sequence[str],
    first: Sequence[str],
    second: Sequence[str],
    labels: Sequence[str],
    rounds: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """95% interval of UAR(first) - UAR(second), two predictions of the same items, by a paired
    bootstrap over the items (each round resamples items, both predictions kept together): how
    far the difference measured on this many items could move by which items were drawn."""
    index = {label: i for i, label in enumerate(labels)}
    t = np.array([index[x] for x in truth])
    hits = np.stack([np.array([index[x] for x in p]) == t for p in (first, second)]).astype(float)
    rows = np.random.default_rng(seed).integers(0, len(t), (rounds, len(t)))
    k = len(labels)
    support = np.stack([np.bincount(r, minlength=k) for r in t[rows]])  # (rounds, classes)
    present = support > 0
    differences = []
    for h in hits:
        recalled = np.stack([np.bincount(r, weights=w, minlength=k) for r, w in zip(t[rows], h[rows], strict=True)])
        differences.append((recalled / np.maximum(support, 1) * present).sum(1) / present.sum(1))
    low, high = np.percentile(differences[0] - differences[1], [2.5, 97.5])
    return float(low), float(high)


def accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
    return float(sklearn.metrics.accuracy_score(list(truth), list(predicted)))


def concordance_correlation(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Lin's concordance correlation coefficient (1 = identical, 0 = unrelated)."""
    truth, predicted = np.asarray(truth, float), np.asarray(predicted, float)
    covariance = np.mean((truth - truth.mean()) * (predicted - predicted.mean()))
    return float(2 * covariance / (truth.var() + predicted.var() + (truth.mean() - predicted.mean()) ** 2))
