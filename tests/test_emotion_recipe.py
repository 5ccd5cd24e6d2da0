"""Augmentations of the emotion recipe (`ser_pipeline.training.emotion`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conftest import SHARED_DATA, needs_shared
from ser_pipeline.audio import SAMPLE_RATE
from ser_pipeline.training.emotion import (
    DIRECT_TO_REVERBERANT_DB,
    RT60_RANGE_S,
    SPEED_RANGE,
    EmotionRecipe,
    at_speed,
    reverberate,
    room_response,
    speed_factor,
)


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


def _decay_time_s(response: np.ndarray) -> float:
    """RT60 read off the tail's Schroeder curve between -5 and -25 dB (T20, times 3)."""
    energy = np.cumsum(response[1:][::-1] ** 2)[::-1]  # the direct sound left out
    curve = 10 * np.log10(energy / energy[0] + 1e-30)
    first, last = np.argmax(curve <= -5), np.argmax(curve <= -25)
    return 3 * (last - first) / SAMPLE_RATE


def test_rooms_follow_the_share_and_decay_within_the_recipes_reverberation_times():
    rng = np.random.default_rng(0)
    assert {room_response(rng, EmotionRecipe(data=Path("."))) is None for _ in range(50)} == {True}
    assert rng.random() == np.random.default_rng(0).random()  # the random stream is untouched
    rooms = [room_response(rng, EmotionRecipe(data=Path("."), reverb_share=0.5)) for _ in range(400)]
    responses = [r for r in rooms if r is not None]
    assert 0.4 < len(responses) / len(rooms) < 0.6
    decays = np.array([_decay_time_s(r) for r in responses])
    assert RT60_RANGE_S[0] * 0.7 < decays.min() and decays.max() < RT60_RANGE_S[1] * 1.3, (decays.min(), decays.max())
    assert np.corrcoef(decays, [len(r) for r in responses])[0, 1] > 0.9  # longer rooms ring longer
    ratios = np.array([10 * np.log10(1 / np.sum(r[1:] ** 2)) for r in responses])
    assert np.allclose([ratios.min(), ratios.max()], DIRECT_TO_REVERBERANT_DB, atol=0.5)


def test_a_room_smears_a_click_but_keeps_the_length_and_the_level():
    click = np.zeros(SAMPLE_RATE, np.float32)
    click[100] = 1.0
    room = room_response(np.random.default_rng(1), EmotionRecipe(data=Path("."), reverb_share=1.0))
    heard = reverberate(click, room)
    assert len(heard) == len(click) and np.isclose(np.sqrt(np.mean(heard**2)), np.sqrt(np.mean(click**2)))
    assert np.count_nonzero(np.abs(heard) > 1e-4) > 0.1 * SAMPLE_RATE and np.argmax(np.abs(heard)) == 100
    assert reverberate(click, None) is click


def test_each_corpus_gets_as_many_clips_per_epoch_as_ravdess_and_the_old_recipe_draws_as_before():
    import random

    from ser_pipeline.training.data import Clip
    from ser_pipeline.training.emotion import _balanced_epoch

    clips = [Clip(Path(f"r{i}"), "happy", f"ravdess-{i % 3}", "ravdess") for i in range(30)]
    clips += [Clip(Path(f"t{i}"), "sad", "tess-OAF", "tess") for i in range(90)]
    two = _balanced_epoch(clips, random.Random(7))
    clips += [Clip(Path(f"n{i}"), "fear", f"nemo-{i % 4}", "nemo") for i in range(150)]
    three = _balanced_epoch(clips, random.Random(7))
    corpus_counts = {name: sum(clips[i].corpus == name for i in three) for name in ("ravdess", "tess", "nemo")}
    assert corpus_counts == {"ravdess": 30, "tess": 30, "nemo": 30} and len(set(three)) == 90
    # Without nEMO the draw is the one the shipped models were trained with (the code before nEMO).
    rng = random.Random(7)
    order = list(range(30)) + rng.sample(list(range(30, 120)), 30)
    rng.shuffle(order)
    assert two == order


@needs_shared
def test_nemo_training_reads_its_development_speakers_only():
    from ser_pipeline.clip_evaluation import NEMO_FINAL_TEST
    from ser_pipeline.training.emotion import EmotionRecipe, _held_out_clips

    train, held_out = _held_out_clips(EmotionRecipe(data=SHARED_DATA, corpora=("ravdess", "tess", "nemo")))
    nemo = {c.speaker for c in train if c.corpus == "nemo"}
    assert nemo == {"nemo-MK0", "nemo-MP0", "nemo-SM0", "nemo-TP0"}
    assert not nemo & {f"nemo-{s}" for s in NEMO_FINAL_TEST} and {c.corpus for c in held_out} == {"ravdess"}
