"""The batched port of silero-vad against the package's own model, frame by frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import EPISODES, needs_shared, tone
from ser_pipeline.audio import decode
from ser_pipeline.voice_activity import SileroVad, VadUnavailable, jit_path, speech_probabilities, speech_timestamps


@pytest.fixture
def package_model():
    """silero-vad's own TorchScript model, stepped as its get_speech_timestamps steps it (importing
    the package sets torch to one thread: the count is put back after the test)."""
    threads = torch.get_num_threads()
    from silero_vad import load_silero_vad

    yield load_silero_vad()
    torch.set_num_threads(threads)


def package_probabilities(model, samples: np.ndarray) -> np.ndarray:
    model.reset_states()
    audio = torch.from_numpy(samples)
    out = []
    for start in range(0, len(audio), 512):
        chunk = torch.nn.functional.pad(audio[start : start + 512], (0, max(0, start + 512 - len(audio))))
        out.append(model(chunk, 16_000).item())
    return np.array(out)


def test_the_port_gives_the_package_models_probabilities(package_model):
    rng = np.random.default_rng(0)
    # a tone, noise, silence and a chirp-like sweep, 9.3 s: the last frame is a partial one
    samples = np.concatenate([
        tone(220, 2.0), 0.05 * rng.standard_normal(32_000).astype(np.float32), np.zeros(16_000, np.float32),
        np.sin(np.cumsum(np.linspace(0.01, 0.3, 68_800))).astype(np.float32) * 0.3,
    ])  # fmt: skip
    ours = speech_probabilities(samples)
    theirs = package_probabilities(package_model, samples)
    assert ours.shape == theirs.shape == (-(-len(samples) // 512),)
    assert np.abs(ours - theirs).max() < 1e-4


@needs_shared
def test_the_port_gives_the_packages_probabilities_and_spans_on_an_episode(package_model):
    from silero_vad import get_speech_timestamps

    import ser_pipeline.voice_activity as voice_activity

    samples = decode(EPISODES / "late-debate" / "late-debate-ep01.mp3").samples[: 16_000 * 70 + 123]
    ours = speech_probabilities(samples)
    theirs = package_probabilities(package_model, samples)
    assert np.abs(ours - theirs).max() < 1e-4
    assert ((ours > 0.5) != (theirs > 0.5)).sum() == 0
    # BLOCK_FRAMES smaller than the audio: the LSTM state carries across blocks
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(voice_activity, "BLOCK_FRAMES", 300)
        assert np.abs(speech_probabilities(samples) - ours).max() < 1e-5
    package_spans = get_speech_timestamps(
        torch.from_numpy(samples), package_model, min_speech_duration_ms=250, min_silence_duration_ms=300
    )
    spans = speech_timestamps(samples)
    assert len(spans) >= 5
    assert [(s.start_s, s.end_s) for s in spans] == [(p["start"] / 16_000, p["end"] / 16_000) for p in package_spans]


def test_voice_activity_leaves_torchs_thread_count_alone():
    torch.set_num_threads(2)
    speech_timestamps(tone(300, 1.0))
    assert torch.get_num_threads() == 2


def test_silence_and_empty_audio():
    assert speech_timestamps(np.zeros(16_000, np.float32)) == []
    assert speech_probabilities(np.zeros(0, np.float32)).shape == (0,)


def test_a_weights_file_other_than_the_pinned_wheels_is_refused(monkeypatch):
    import ser_pipeline.voice_activity as voice_activity

    assert isinstance(SileroVad.from_package(jit_path()), SileroVad)
    monkeypatch.setattr(voice_activity, "SILERO_JIT_SHA256", "0" * 64)
    with pytest.raises(VadUnavailable, match="is not the file silero-vad==6.2.3 ships"):
        jit_path()


def _in_pieces(samples: np.ndarray, rng) -> list[np.ndarray]:
    cuts = np.sort(rng.choice(np.arange(1, len(samples)), 12, replace=False))
    return np.split(samples, cuts)


@needs_shared
def test_blocks_of_any_length_give_the_whole_s_probabilities_and_spans():
    from silero_vad.utils_vad import get_speech_timestamps_from_probs

    from ser_pipeline.voice_activity import SpeechTracker, VadStream

    samples = decode(EPISODES / "morning-chat" / "morning-chat-ep02.mp3").samples[: 16_000 * 90 + 77]
    whole = speech_probabilities(samples)
    stream, tracker, spans, streamed = VadStream(), SpeechTracker(), [], []
    for piece in _in_pieces(samples, np.random.default_rng(1)):
        streamed.append(stream.push(piece))
        spans += tracker.push(streamed[-1])
    streamed.append(stream.finish())
    spans += tracker.push(streamed[-1]) + tracker.finish(len(samples))
    assert np.abs(np.concatenate(streamed) - whole).max() < 1e-5
    assert len(spans) >= 5 and spans == speech_timestamps(samples)
    package = get_speech_timestamps_from_probs(
        whole.tolist(), min_speech_duration_ms=250, min_silence_duration_ms=300, audio_length_samples=len(samples)
    )
    assert [(s.start_s, s.end_s) for s in spans] == [(p["start"] / 16_000, p["end"] / 16_000) for p in package]


@pytest.mark.parametrize("seed", range(6))
def test_the_streaming_timestamp_rules_are_the_package_s(seed):
    """Random probability runs (speech, silence, the band between the two thresholds, a speech at
    the very start or the very end), fed in random pieces: the package's spans exactly."""
    from silero_vad.utils_vad import get_speech_timestamps_from_probs

    from ser_pipeline.voice_activity import SpeechTracker

    rng = np.random.default_rng(seed)
    runs = [np.full(rng.integers(1, 40), rng.choice([0.05, 0.4, 0.45, 0.6, 0.9])) for _ in range(120)]
    probabilities = np.concatenate(runs).astype(np.float32)
    total = len(probabilities) * 512 - int(rng.integers(0, 512))
    min_speech_s, min_silence_s = [(0.25, 0.3), (0.1, 0.06), (0.5, 1.0)][seed % 3]
    tracker, spans = SpeechTracker(min_speech_s, min_silence_s), []
    for piece in np.array_split(probabilities, sorted(rng.choice(len(probabilities), 7, replace=False))):
        spans += tracker.push(piece)
    spans += tracker.finish(total)
    package = get_speech_timestamps_from_probs(
        probabilities.tolist(),
        min_speech_duration_ms=int(min_speech_s * 1000),
        min_silence_duration_ms=int(min_silence_s * 1000),
        audio_length_samples=total,
    )
    assert len(package) >= 3
    assert [(s.start_s, s.end_s) for s in spans] == [(p["start"] / 16_000, p["end"] / 16_000) for p in package]
