"""Laughter events from frame probabilities: smoothing -> threshold -> merge gaps -> minimum length."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float = 0.5
    smooth_s: float = 0.25  # width of the centred moving average
    min_duration_s: float = 0.3
    merge_gap_s: float = 0.3


@dataclass(frozen=True)
class LaughterEvent:
    start_s: float
    end_s: float
    peak_prob: float
    mean_prob: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def smooth(probs: np.ndarray, frames_per_second: float, width_s: float) -> np.ndarray:
    """Centred moving average; edges average over the frames that exist."""
    width = max(1, int(round(width_s * frames_per_second)))
    if width == 1 or len(probs) == 0:
        return probs.astype(np.float32)
    kernel = np.ones(width, dtype=np.float64)
    total = np.convolve(probs.astype(np.float64), kernel, mode="same")
    count = np.convolve(np.ones(len(probs)), kernel, mode="same")
    return (total / count).astype(np.float32)


def _runs(active: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index pairs of the True runs."""
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def detect_events(probs: np.ndarray, frames_per_second: float, point: OperatingPoint) -> list[LaughterEvent]:
    """Frame probabilities (frame t centred at t / fps seconds) -> laughter events."""
    smoothed = smooth(probs, frames_per_second, point.smooth_s)
    runs = _runs(smoothed >= point.threshold)
    merged: list[list[int]] = []
    gap = point.merge_gap_s * frames_per_second
    for start, stop in runs:
        if merged and start - merged[-1][1] <= gap:
            merged[-1][1] = stop
        else:
            merged.append([start, stop])
    events = []
    for start, stop in merged:
        if (stop - start) / frames_per_second < point.min_duration_s:
            continue
        inside = probs[start:stop]
        events.append(
            LaughterEvent(
                start / frames_per_second, stop / frames_per_second, float(inside.max()), float(inside.mean())
            )
        )
    return events


def matched_pairs(
    truth: list[tuple[float, float]], detected: list[tuple[float, float]], min_iou: float = 0.3
) -> list[tuple[int, int]]:
    """One-to-one matching at IoU >= min_iou, best pairs first: (truth index, detected index) pairs."""
    pairs = []
    for i, (ts, te) in enumerate(truth):
        for j, (ds, de) in enumerate(detected):
            overlap = min(te, de) - max(ts, ds)
            if overlap > 0:
                iou = overlap / (max(te, de) - min(ts, ds))
                if iou >= min_iou:
                    pairs.append((iou, i, j))
    used_truth, used_detected, matched = set(), set(), []
    for _, i, j in sorted(pairs, reverse=True):
        if i not in used_truth and j not in used_detected:
            used_truth.add(i)
            used_detected.add(j)
            matched.append((i, j))
    return matched


def match_events(
    truth: list[tuple[float, float]], detected: list[tuple[float, float]], min_iou: float = 0.3
) -> tuple[int, int, int]:
    """One-to-one matching at IoU >= min_iou, best pairs first: (true positives, false positives, misses)."""
    hits = len(matched_pairs(truth, detected, min_iou))
    return hits, len(detected) - hits, len(truth) - hits
