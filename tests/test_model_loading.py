"""From the registry to loaded models (`ser_pipeline.model_loading`), on the committed registry."""

from __future__ import annotations

import pytest
import torch

from ser_pipeline.architectures import EmotionEnsemble, SpeakerBranch
from ser_pipeline.model_loading import load_models
from ser_pipeline.registry import Registry
from ser_pipeline.whisper_emotion import WhisperDims, WhisperEmotionScorer


def test_the_default_is_the_whisper_head_giving_emotion_and_dims_without_a_log_mel_network():
    registry = Registry.load()
    models = load_models(registry, "cpu")
    assert registry.defaults["emotion"] == registry.defaults["dims"] == "ser-whisper-head-v1"
    assert isinstance(models.waveform_emotion, WhisperEmotionScorer) and models.dims_from_emotion
    assert models.emotion_net is None and models.dims_net is None and models.branch is None
    assert models.needs_samples and not models.reads_features
    assert models.ids == {
        "emotion": "ser-whisper-head-v1",
        "dims": "ser-whisper-head-v1",
        "laughter": f"{registry.defaults['laughter']}@balanced",
    }


def test_a_waveform_emotion_model_keeps_the_network_dims_model_with_its_speaker_context_and_branch():
    registry = Registry.load()
    models = load_models(registry, "cpu", emotion_model="ser-whisper-head-v1", dims_model="ser-crnn-v3")
    assert models.waveform_emotion is not None and not models.dims_from_emotion
    assert isinstance(models.emotion_net, EmotionEnsemble) and models.speaker_context and models.heads.with_dims
    assert models.branch is not None and models.ids["emotion_branch"] == "ser-speaker-branch-v6"
    assert models.dims_calibration == registry.get("ser-crnn-v3").options["dims_calibration"]
    beside = load_models(registry, "cpu", emotion_model="ser-crnn-v3", dims_model="ser-whisper-head-v1")
    assert isinstance(beside.waveform_dims, WhisperDims) and beside.waveform_emotion is None


def test_the_network_loads_as_the_registry_names_it_with_its_options():
    registry = Registry.load()
    models = load_models(registry, "cpu", emotion_model="ser-crnn-v3", dims_model="ser-crnn-v3")
    default = registry.get("ser-crnn-v3")
    assert models.device == torch.device("cpu")
    assert isinstance(models.emotion_net, EmotionEnsemble) and models.waveform_emotion is None
    assert models.speaker_context and models.description_width == models.emotion_net.description_width
    # the dims are the emotion network's head: no other dims model, dims read from the heads
    assert models.dims_net is None and models.waveform_dims is None and models.heads.with_dims
    assert models.heads.temperatures == {h: default.options["temperature"][h] for h in ("emotion", "sentiment")}
    option = default.options["speaker_branch"]
    assert isinstance(models.branch.network, SpeakerBranch)
    assert models.branch.weight == option["weight"]
    assert models.branch.temperature == default.options["temperature"]["fused_emotion"]
    assert models.statistics_width == models.branch.network.config.n_statistics
    assert models.dims_calibration == default.options["dims_calibration"]
    assert models.ids == {
        "emotion": default.id,
        "dims": default.id,
        "laughter": f"{registry.defaults['laughter']}@balanced",
        "emotion_branch": option["model"],
    }
    assert not models.needs_samples and not models.laughter_reads_waveform and models.reads_features


def test_another_dims_model_takes_the_dims_from_the_emotion_networks_heads_and_branch():
    models = load_models(Registry.load(), "cpu", emotion_model="ser-crnn-v1", dims_model="ser-dims-crnn-v1")
    assert models.dims_net is not None and not models.heads.with_dims
    assert models.branch is not None and not models.branch.fuses_dims
    assert models.ids["dims"] == "ser-dims-crnn-v1"


def test_an_unknown_operating_point_names_the_known_ones():
    with pytest.raises(ValueError, match=r"no operating point 'loose' \(known: .*balanced"):
        load_models(Registry.load(), "cpu", operating_point="loose")
