"""Evaluation metrics shared by the training recipes and the evaluation commands."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.optimize
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


@dataclass(frozen=True)
class DiarizationScore:
    """Seconds of reference speech missed, hypothesis speech where the reference has none (false
    alarm), and speech given to the wrong speaker (confusion) under the best one-to-one mapping
    of labels; `der` is their sum over the reference's speech (overlapped speech counts per speaker)."""

    missed_s: float
    false_alarm_s: float
    confusion_s: float
    speech_s: float
    reference_speakers: int
    hypothesis_speakers: int

    @property
    def der(self) -> float:
        return (self.missed_s + self.false_alarm_s + self.confusion_s) / max(self.speech_s, 1e-9)


def diarization_score(reference, hypothesis, collar_s: float = 0.25, step_s: float = 0.01) -> DiarizationScore:
    """Frame-based diarization error of `hypothesis` against `reference` (lists of turns with
    start_s, end_s and speaker), frames within `collar_s` of the moment a reference speaker starts
    or stops not scored (NIST's collar: 0.25 s either side; pyannote.metrics' collar=0.5)."""
    end = max([t.end_s for t in [*reference, *hypothesis]], default=0.0)
    frames = int(np.ceil(end / step_s)) + 1

    def activity(turns) -> tuple[np.ndarray, list[str]]:
        names = sorted({t.speaker for t in turns})
        active = np.zeros((frames, len(names)), bool)
        for t in turns:
            active[int(round(t.start_s / step_s)) : int(round(t.end_s / step_s)), names.index(t.speaker)] = True
        return active, names

    ref, ref_names = activity(reference)
    hyp, hyp_names = activity(hypothesis)
    scored = np.ones(frames, bool)
    width = int(round(collar_s / step_s))
    padded = np.pad(ref, ((1, 1), (0, 0)))
    for edge in np.flatnonzero((padded[1:] != padded[:-1]).any(axis=1)):  # a speaker starts or stops
        scored[max(edge - width, 0) : edge + width] = False
    ref, hyp = ref[scored], hyp[scored]
    together = ref.T.astype(np.int64) @ hyp.astype(np.int64)  # (ref speakers, hyp speakers) frames in common
    rows, cols = scipy.optimize.linear_sum_assignment(-together) if together.size else ([], [])
    correct = np.zeros(len(ref), np.int64)
    for r, c in zip(rows, cols, strict=True):
        correct += ref[:, r] & hyp[:, c]
    n_ref, n_hyp = ref.sum(1), hyp.sum(1)
    return DiarizationScore(
        float(np.maximum(n_ref - n_hyp, 0).sum() * step_s),
        float(np.maximum(n_hyp - n_ref, 0).sum() * step_s),
        float((np.minimum(n_ref, n_hyp) - correct).sum() * step_s),
        float(n_ref.sum() * step_s),
        len(ref_names),
        len(hyp_names),
    )
