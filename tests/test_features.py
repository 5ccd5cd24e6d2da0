from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tone
from ser_pipeline.features import FrontEndConfig, LogMel, LogMelStream, frame_span, fused_features, mfcc_from_logmel

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def front_end():
    return LogMel(FrontEndConfig())


@pytest.mark.parametrize("frequency", [250.0, 1000.0, 4000.0])
def test_pure_tone_peaks_in_the_mel_band_holding_its_frequency(front_end, frequency):
    import torchaudio

    logmel = front_end.episode(tone(frequency, 1.0), CPU)
    config = front_end.config
    centres = torchaudio.functional.melscale_fbanks(
        config.n_fft // 2 + 1, config.f_min, config.f_max, config.n_mels, 16_000
    )
    freqs = torch.linspace(0, 8000, config.n_fft // 2 + 1)
    peak_band = int(logmel[20:-20].mean(0).argmax())
    band_centre = float(freqs[centres[:, peak_band].argmax()])
    assert band_centre == pytest.approx(frequency, rel=0.08)


def test_silence_is_the_log_floor_everywhere(front_end):
    logmel = front_end.episode(np.zeros(16_000, np.float32), CPU)
    assert torch.allclose(logmel, torch.full_like(logmel, float(np.log(1e-6))))


def test_click_train_gives_energy_peaks_at_the_clicks(front_end):
    signal = np.zeros(16_000 * 2, np.float32)
    signal[::4000] = 1.0  # a click every 250 ms
    energy = front_end.episode(signal, CPU).exp().sum(-1).numpy()
    peaks = [
        i
        for i in range(1, len(energy) - 1)
        if energy[i] >= energy[i - 1] and energy[i] > energy[i + 1] and energy[i] > energy.max() / 4
    ]
    assert np.allclose(np.diff(peaks), 25, atol=1)


def test_frame_count_and_chunking_are_exact(front_end):
    signal = np.random.default_rng(0).standard_normal(16_000 * 7 + 123).astype(np.float32)
    whole = front_end.episode(signal, CPU, chunk_frames=10_000)
    assert whole.shape == (front_end.frame_count(len(signal)), 64)
    assert torch.equal(whole, front_end.episode(signal, CPU, chunk_frames=97))
    assert torch.allclose(whole, front_end.frames(torch.from_numpy(signal)), atol=1e-5)


def test_mfcc_zeroth_coefficient_tracks_overall_level(front_end):
    logmel = front_end.episode(tone(500, 1.0), CPU)
    louder = front_end.episode(tone(500, 1.0, amplitude=0.9), CPU)
    assert (mfcc_from_logmel(louder, 20)[:, 0] > mfcc_from_logmel(logmel, 20)[:, 0]).all()
    assert fused_features(logmel, 20).shape == (len(logmel), 84)


@pytest.mark.parametrize(
    "start, end, expected",
    [(0.0, 3.0, (0, 300)), (1.234, 2.5, (124, 250)), (9.99, 10.5, (999, 1001)), (5.0, 5.0, (500, 501))],
)
def test_frame_span(start, end, expected):
    assert frame_span(start, end, 100.0, 1001) == expected


@pytest.mark.parametrize(
    "signal, expected",
    [
        (np.zeros(16_000, np.float32), (0, 101)),  # nothing louder than anything else: keep it all
        (np.concatenate([np.zeros(16_000), tone(300, 1.0), np.zeros(16_000)]).astype(np.float32), (96, 206)),
    ],
)
def test_voiced_span_cuts_leading_and_trailing_pauses(front_end, signal, expected):
    from ser_pipeline.features import voiced_span

    first, last = voiced_span(front_end.episode(signal, CPU))
    assert (first, last) == pytest.approx(expected, abs=2)


def test_streamed_log_mel_equals_the_whole_signal_whatever_the_block_sizes():
    rng = np.random.default_rng(3)
    signal = rng.standard_normal(16_000 * 3 + 77).astype(np.float32)
    front_end = LogMel()
    stream = LogMelStream(front_end, CPU, expected_samples=1000, chunk_frames=50)  # estimate far too short
    cuts = np.cumsum([1, 159, 160, 513, 7, 10_000, 3, 20_000])
    for block in np.split(signal, cuts):
        stream.push(block)
    streamed = stream.finish()
    whole = front_end.episode(signal, CPU)
    assert streamed.shape == whole.shape == (len(signal) // 160 + 1, 64)
    torch.testing.assert_close(streamed, whole, rtol=0, atol=1e-5)
