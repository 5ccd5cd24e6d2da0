from __future__ import annotations

import numpy as np
import pytest

from ser_pipeline.laughter import OperatingPoint, detect_events, match_events, smooth

FPS = 100.0
RAW = OperatingPoint(threshold=0.5, smooth_s=0.0, min_duration_s=0.2, merge_gap_s=0.3)


def probs_with(*spans, length=1000, level=0.9):
    p = np.full(length, 0.05, np.float32)
    for a, b in spans:
        p[a:b] = level
    return p


def test_one_boxcar_is_one_event_with_its_times_peak_and_mean():
    (event,) = detect_events(probs_with((100, 250)), FPS, RAW)
    assert (event.start_s, event.end_s, event.duration_s) == (1.0, 2.5, 1.5)
    assert event.peak_prob == pytest.approx(0.9) and event.mean_prob == pytest.approx(0.9)


def test_short_blips_are_dropped_and_small_gaps_merged():
    events = detect_events(probs_with((100, 110), (300, 400), (420, 500), (700, 800)), FPS, RAW)
    assert [(e.start_s, e.end_s) for e in events] == [(3.0, 5.0), (7.0, 8.0)]


def test_nothing_above_threshold_gives_no_event():
    assert detect_events(np.full(500, 0.4, np.float32), FPS, RAW) == []
    assert detect_events(np.zeros(0, np.float32), FPS, RAW) == []


def test_smoothing_removes_a_single_frame_spike_and_keeps_a_plateau():
    p = probs_with((500, 501), (100, 300), level=1.0)
    smoothed = smooth(p, FPS, 0.25)
    assert smoothed[500] < 0.5 and smoothed[200] == pytest.approx(1.0)
    assert len(smoothed) == len(p)


@pytest.mark.parametrize(
    "truth, detected, expected",
    [
        ([(1, 2)], [(1, 2)], (1, 0, 0)),
        ([(1, 2)], [(1.8, 4)], (0, 1, 1)),  # IoU 0.2/3 < 0.3
        ([(1, 2)], [(1, 2), (1.1, 2)], (1, 1, 0)),  # one to one
        ([(1, 2), (3, 4)], [(0.5, 4.5)], (0, 1, 2)),
        ([], [(1, 2)], (0, 1, 0)),
    ],
)
def test_event_matching(truth, detected, expected):
    assert match_events(truth, detected) == expected


def test_scene_augmentations_keep_what_they_promise():
    import random

    from ser_pipeline.training.laughter import _speed, _tilt, excerpt

    rng = random.Random(0)
    clip = np.sin(np.arange(32_000) * 2 * np.pi * 200 / 16_000).astype(np.float32)
    faster, slower = _speed(clip, 1.25), _speed(clip, 0.8)
    assert abs(len(faster) - 32_000 / 1.25) <= 1 and abs(len(slower) - 32_000 / 0.8) <= 1
    # Sped up 1.25x, a 200 Hz tone becomes 250 Hz: count zero crossings.
    crossings = np.count_nonzero(np.diff(np.signbit(faster))) / (len(faster) / 16_000) / 2
    assert crossings == pytest.approx(250, rel=0.01)
    assert _speed(clip, 1.0) is clip
    for _ in range(20):
        piece = excerpt(clip, rng)
        assert 0.6 * 16_000 - 320 <= len(piece) <= 3.0 * 16_000
        tilted = _tilt(clip, rng)
        assert tilted.shape == clip.shape and tilted.dtype == np.float32 and np.isfinite(tilted).all()


def test_laughing_together_adds_a_second_laugh_at_most_as_loud_inside_the_first():
    import random

    from ser_pipeline.training.laughter import _together

    rng = random.Random(0)
    laugh = np.sin(np.arange(32_000) * 2 * np.pi * 200 / 16_000).astype(np.float32)
    for other_length in (8_000, 64_000):  # shorter and longer than the laugh
        other = np.sin(np.arange(other_length) * 2 * np.pi * 330 / 16_000).astype(np.float32) * 0.01
        for _ in range(10):
            mixed = _together(laugh, other, rng)
            assert mixed.shape == laugh.shape and mixed.dtype == np.float32
            added = mixed - laugh
            assert np.count_nonzero(added) > 0.2 * len(other[: len(laugh)])
            level_db = 10 * np.log10(np.mean(added[added != 0] ** 2) / np.mean(laugh**2))
            assert -9.5 <= level_db <= 0.5  # rescaled to the laugh's level, then -9..0 dB


def test_band_shift_moves_each_scene_by_a_few_mel_bands_and_repeats_the_edge_band():
    import random
    from dataclasses import replace
    from pathlib import Path

    import torch

    from ser_pipeline.training.laughter import LaughterRecipe, _shift_bands

    recipe = replace(LaughterRecipe(data=Path(".")), band_shift=3, band_shift_share=1.0)
    # band b holds b, plus an offset per scene and frame
    logmel = torch.arange(64, dtype=torch.float32).repeat(8, 50, 1) + torch.randn(8, 50, 1)
    original = logmel.clone()
    shifted = _shift_bands(logmel, recipe, random.Random(0))
    assert torch.equal(logmel, original) and shifted.shape == logmel.shape
    seen = set()
    for scene, moved in zip(logmel, shifted):
        matches = [k for k in range(-3, 4) if torch.equal(moved, scene[:, (torch.arange(64) - k).clamp(0, 63)])]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > 1 and seen != {0}
    unchanged = _shift_bands(logmel, replace(recipe, band_shift_share=0.0), random.Random(0))
    assert torch.equal(unchanged, logmel)


def test_sharpening_lifts_harmonics_over_breath_and_keeps_the_clip_in_place():
    import librosa

    from ser_pipeline.training.laughter import sharpen

    rng = np.random.default_rng(0)
    t = np.arange(16_000) / 16_000
    voice = sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 8))
    breathy = (voice * (t < 0.6) + 0.5 * rng.standard_normal(len(t))).astype(np.float32)
    flatness = {p: np.median(librosa.feature.spectral_flatness(y=sharpen(breathy, p))) for p in (1.0, 1.5)}
    assert flatness[1.5] < flatness[1.0] / 3
    sharpened = sharpen(breathy, 1.5)
    assert sharpened.shape == breathy.shape and sharpened.dtype == np.float32
    # the voiced first 0.6 s stays louder than the breath-only rest
    assert np.mean(sharpened[:8_000] ** 2) > 10 * np.mean(sharpened[11_000:] ** 2)


def test_band_limiting_silences_what_lies_above_the_cutoff_and_keeps_the_rest():
    from scipy.signal import welch

    from ser_pipeline.training.laughter import bandlimit

    noise = np.random.default_rng(0).standard_normal(32_000).astype(np.float32)
    limited = bandlimit(noise, 3000.0)
    assert limited.shape == noise.shape and limited.dtype == np.float32
    frequencies, before = welch(noise, 16_000, nperseg=1024)
    _, after = welch(limited, 16_000, nperseg=1024)
    below, above = frequencies < 2000, frequencies > 4500
    assert np.allclose(after[below] / before[below], 1.0, atol=0.2)
    assert np.all(after[above] < before[above] * 1e-4)


def test_pcen_maps_a_steady_noise_floor_alike_at_any_level_and_keeps_a_burst_above_it():
    import torch

    from ser_pipeline.architectures import pcen
    from ser_pipeline.features import LogMel

    rng = np.random.default_rng(0)
    noise = rng.standard_normal(16000 * 4).astype(np.float32)
    burst = np.zeros_like(noise)
    burst[24000:25600] = 0.3 * np.sin(2 * np.pi * 440 * np.arange(1600) / 16000)  # frames 150-160
    front_end = LogMel()
    representations = {}
    for level_db in (-60, -40):
        logmel = front_end.frames(torch.from_numpy(noise * 10 ** (level_db / 20) + burst)[None])
        representations[level_db] = pcen(logmel, half_window=50)[0].numpy()
    quiet, loud = representations[-60], representations[-40]
    steady = slice(0, 90)  # noise alone, more than a window away from the burst
    log_gap = abs(np.log(10 ** (-40 / 10)) - np.log(10 ** (-60 / 10)))  # 4.6 nats apart as log-mel
    assert np.abs(quiet[steady] - loud[steady]).mean() < 0.05 * log_gap
    band_440 = int(np.argmax(quiet[152:158].mean(axis=0)))
    assert quiet[152:158, band_440].mean() > 4 * quiet[steady, band_440].mean()


def test_pcen_runs_in_float32_for_half_precision_input_and_under_autocast():
    import torch

    from ser_pipeline.architectures import pcen

    logmel = torch.full((1, 40, 8), 12.0)  # e^12 overflows float16
    logmel[0, 20] = 14.0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = pcen(logmel.half(), half_window=5)
    assert inside.dtype == torch.float32 and torch.isfinite(inside).all()
    assert torch.equal(inside, pcen(logmel, half_window=5))


def test_scenes_put_laughs_over_the_end_of_speech_and_into_rooms_when_asked():
    import random
    from pathlib import Path

    from ser_pipeline.training.laughter import LaughterRecipe, SceneMaker

    speech = [np.sin(np.arange(16_000) * 2 * np.pi * 150 / 16_000).astype(np.float32)]  # 1 s of 150 Hz
    laughs = [np.sin(np.arange(8_000) * 2 * np.pi * 500 / 16_000).astype(np.float32)]  # 0.5 s of 500 Hz
    plain = LaughterRecipe(data=Path("."), augment=False, laughter_share=0.5, vocalization_share=0.0)

    def scene(**changes):
        from dataclasses import replace

        return SceneMaker(laughs, [], speech, replace(plain, **changes), random.Random(3)).scene()

    def speech_under_laughs(samples, mask):  # the 150 Hz speech's energy inside the laughs' spans
        spectrum = np.abs(np.fft.rfft(np.where(mask, samples, 0)))
        hz = np.fft.rfftfreq(len(samples), 1 / 16_000)
        return spectrum[(hz > 140) & (hz < 160)].sum() / spectrum.sum()

    before, mask_before = scene()
    overlapped, mask_overlapped = scene(overlap_share=1.0)
    assert mask_before.any() and mask_overlapped.any()
    assert speech_under_laughs(before, mask_before) < 0.01 < speech_under_laughs(overlapped, mask_overlapped)
    dry, _ = scene(room_share=0.0)
    roomy, mask = scene(room_share=1.0)
    assert np.array_equal(dry, before)  # no room asked: the scene as before, draw for draw
    after_laughs = ~mask & (np.cumsum(mask) > 0)
    tail = np.abs(roomy[after_laughs]).mean() / (np.abs(dry[after_laughs]).mean() + 1e-9)
    assert tail > 1.0  # a room's tail sounds where the dry scene had gaps and noise


def test_shuffled_speech_keeps_every_piece_in_another_order_without_clicks():
    import random

    from ser_pipeline.training.laughter import shuffled

    clip = 0.99 + np.arange(16_000, dtype=np.float32) / 1_600_000  # distinct; a faded value falls below them all
    out = shuffled(clip, random.Random(1))
    assert out.shape == clip.shape and out.dtype == np.float32
    kept = np.isin(out, clip)  # all but the 5 ms fades at each cut (at most 11 pieces of >= 0.1 s)
    assert 0.85 < kept.mean() < 1 and len(np.unique(out[kept])) == kept.sum()  # each sample once
    assert not np.all(np.diff(out[kept]) > 0)  # in another order
    assert np.abs(np.diff(out)).max() < 0.02  # faded out and in at every cut: no click


def test_speech_is_shuffled_when_asked_and_laughs_never():
    import random
    from dataclasses import replace
    from pathlib import Path

    from ser_pipeline.training.laughter import LaughterRecipe, SceneMaker, unlike_any_language

    rising = np.linspace(0.1, 0.5, 16_000, dtype=np.float32)
    recipe = LaughterRecipe(data=Path("."), shuffle_share=1.0)
    assert unlike_any_language(rising, replace(recipe, shuffle_share=0.0), random.Random(0)) is rising
    out = unlike_any_language(rising, recipe, random.Random(0))
    assert out.shape == rising.shape and not np.all(np.diff(out[np.isin(out, rising)]) > 0)

    def scene(laughter_share, shuffle_share):
        chosen = replace(recipe, laughter_share=laughter_share, vocalization_share=0.0, shuffle_share=shuffle_share)
        return SceneMaker([rising[:8000]], [], [rising], chosen, random.Random(3)).scene()[0]

    assert np.array_equal(scene(1.0, 0.0), scene(1.0, 1.0))  # only laughs: untouched, draw for draw
    assert not np.array_equal(scene(0.0, 0.0), scene(0.0, 1.0))  # only speech: changed
