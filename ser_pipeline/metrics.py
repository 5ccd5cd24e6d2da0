"""Evaluation metrics shared by the training recipes and the evaluation commands."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Counts, rows = true label, columns = predicted label, in `labels` order."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(truth, predicted, strict=True):
        matrix[index[t], index[p]] += 1
    return matrix


def unweighted_average_recall(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> float:
    """Mean per-class recall over the classes present in `truth` (chance = 1 / classes)."""
    matrix = confusion(truth, predicted, labels)
    support = matrix.sum(axis=1)
    present = support > 0
    return float((np.diag(matrix)[present] / support[present]).mean())


def accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
    return float(np.mean([t == p for t, p in zip(truth, predicted, strict=True)]))


def concordance_correlation(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Lin's concordance correlation coefficient (1 = identical, 0 = unrelated)."""
    truth, predicted = np.asarray(truth, float), np.asarray(predicted, float)
    covariance = np.mean((truth - truth.mean()) * (predicted - predicted.mean()))
    return float(2 * covariance / (truth.var() + predicted.var() + (truth.mean() - predicted.mean()) ** 2))
