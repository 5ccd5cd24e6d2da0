"""Acoustic evidence of arousal, for deriving dimensional training targets.

The literature ties arousal to loudness, pitch level and pitch range (e.g. Juslin & Laukka
2003; Schuller et al.): each clip gets those three measures over its voiced frames, z-scored
within its speaker (so a loud voice is not an aroused one), averaged and squashed to 0..1.
"""

from __future__ import annotations

from collections import defaultdict

import librosa
import numpy as np

from ser_pipeline.audio import SAMPLE_RATE

_FRAME, _HOP = 1024, 160


def arousal_measures(samples: np.ndarray) -> np.ndarray:
    """[loudness dB, median F0 in semitones, F0 range (p90 - p10) in semitones] of voiced frames."""
    rms = librosa.feature.rms(y=samples, frame_length=_FRAME, hop_length=_HOP)[0]
    loud_db = 20 * np.log10(rms + 1e-9)
    voiced = loud_db > loud_db.max() - 30
    f0 = librosa.yin(samples, fmin=60, fmax=500, sr=SAMPLE_RATE, frame_length=_FRAME, hop_length=_HOP)
    pitch = 12 * np.log2(f0[voiced[: len(f0)]] / 55.0)
    return np.array([loud_db[voiced].mean(), np.median(pitch), np.percentile(pitch, 90) - np.percentile(pitch, 10)])


def acoustic_arousal(measures: np.ndarray, speakers: list[str]) -> np.ndarray:
    """(clips, 3) measures -> 0..1 arousal evidence, z-scored per speaker."""
    rows = defaultdict(list)
    for index, speaker in enumerate(speakers):
        rows[speaker].append(index)
    z = np.zeros_like(measures, dtype=np.float64)
    for indices in rows.values():
        block = measures[indices]
        z[indices] = (block - block.mean(axis=0)) / (block.std(axis=0) + 1e-6)
    return 1 / (1 + np.exp(-1.5 * z.mean(axis=1)))
