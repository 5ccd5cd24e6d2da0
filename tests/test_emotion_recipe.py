"""Augmentations of the emotion recipe (`ser_pipeline.training.emotion`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ser_pipeline.audio import SAMPLE_RATE
from ser_pipeline.training.emotion import SPEED_RANGE, EmotionRecipe, at_speed, speed_factor


def test_speed_perturbation_raises_pitch_and_shortens_by_the_same_factor():
    tone = np.sin(2 * np.pi * 200 * np.arange(SAMPLE_RATE) / SAMPLE_RATE).astype(np.float32)
    for factor in (0.9, 1.1):
        faster = at_speed(tone, factor)
        peak_hz = np.abs(np.fft.rfft(faster)).argmax() * SAMPLE_RATE / len(faster)
        assert abs(len(faster) - SAMPLE_RATE / factor) <= 2 and abs(peak_hz - 200 * factor) < 2, (factor, peak_hz)
    assert at_speed(tone, 1.0) is tone


def test_speed_factors_follow_the_share_and_a_zero_share_draws_nothing():
    rng = np.random.default_rng(0)
    assert {speed_factor(rng, EmotionRecipe(data=Path("."))) for _ in range(50)} == {1.0}
    assert rng.random() == np.random.default_rng(0).random()  # the random stream is untouched
    factors = np.array([speed_factor(rng, EmotionRecipe(data=Path("."), speed_share=0.5)) for _ in range(2000)])
    changed = factors[factors != 1.0]
    assert 0.45 < len(changed) / len(factors) < 0.55
    assert SPEED_RANGE[0] <= changed.min() and changed.max() <= SPEED_RANGE[1] and changed.std() > 0.04
