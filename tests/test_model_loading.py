"""From the registry to loaded models (`ser_pipeline.model_loading`), on the committed registry."""

from __future__ import annotations

import pytest
import torch

from ser_pipeline.architectures import EmotionEnsemble, SpeakerBranch
from ser_pipeline.model_loading import load_models
from ser_pipeline.registry import Registry


def test_the_defaults_load_as_the_registry_names_them_with_their_options():
    registry = Registry.load()
    models = load_models(registry, "cpu")
    default = registry.get(registry.defaults["emotion"])
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
