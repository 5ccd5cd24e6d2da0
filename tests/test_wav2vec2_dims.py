"""The audEERING wav2vec2 dimensional model as a drop-in, tested offline on a tiny random model
of the same key layout saved to a temporary directory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2Config

from ser_pipeline.registry import ModelNotFoundError, Registry
from ser_pipeline.segmentation import Segment
from ser_pipeline.wav2vec2_dims import Wav2Vec2DimsModel, Wav2Vec2DimsScorer

MODEL_ID = "audeering-w2v2-dims"
CPU = torch.device("cpu")


def tiny_config() -> Wav2Vec2Config:
    return Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), do_stable_layer_norm=True,
        feat_extract_norm="layer", num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        num_labels=3, final_dropout=0.1,
    )  # fmt: skip


@pytest.fixture()
def model_dir(tmp_path, monkeypatch):
    """A tiny model whose head always answers arousal 0.9, dominance 0.5, valence 0.1."""
    torch.manual_seed(0)
    model = Wav2Vec2DimsModel(tiny_config()).eval()
    with torch.no_grad():
        model.classifier.out_proj.weight.zero_()
        model.classifier.out_proj.bias.copy_(torch.tensor([0.9, 0.5, 0.1]))
    model.save_pretrained(tmp_path / MODEL_ID)
    monkeypatch.setenv("SER_MODEL_PATH", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / MODEL_ID


def test_key_layout_matches_the_published_model():
    keys = set(Wav2Vec2DimsModel(tiny_config()).state_dict())
    assert {
        "classifier.dense.weight",
        "classifier.dense.bias",
        "classifier.out_proj.weight",
        "classifier.out_proj.bias",
    } <= keys
    assert "wav2vec2.encoder.layers.0.attention.k_proj.weight" in keys and "wav2vec2.encoder.layer_norm.weight" in keys
    assert not any(k.startswith(("lm_head", "projector")) for k in keys)


def test_outputs_arousal_dominance_valence_land_in_the_right_columns(model_dir):
    scorer = Wav2Vec2DimsScorer(Registry.load().get(MODEL_ID), CPU)
    dims = scorer.score(
        np.random.default_rng(0).standard_normal(16_000 * 4).astype(np.float32), [Segment(0, "window", 0, 3)]
    )
    valence, arousal, dominance = dims[0]
    assert (valence, arousal, dominance) == pytest.approx((0.1, 0.9, 0.5), abs=1e-6)


def test_long_segments_are_chunked_and_averaged_by_length(model_dir):
    scorer = Wav2Vec2DimsScorer(Registry.load().get(MODEL_ID), CPU, max_chunk_s=2.0)
    torch.nn.init.normal_(scorer.model.classifier.out_proj.weight, std=0.5)  # make outputs depend on the audio
    samples = np.random.default_rng(1).standard_normal(16_000 * 6).astype(np.float32)
    segment = Segment(0, "sentence", 0.5, 5.0)  # 4.5 s -> three chunks of 1.5 s
    chunks = torch.from_numpy(samples[8_000:80_000].reshape(3, 24_000))
    expected = scorer.dims_batch(chunks).mean(axis=0)
    assert scorer.score(samples, [segment])[0] == pytest.approx(expected, abs=1e-5)
    alone = [scorer.dims_batch(chunks[i : i + 1])[0] for i in range(3)]
    assert np.mean(alone, axis=0) == pytest.approx(expected, abs=1e-5)  # a batch equals one at a time


def test_analyzer_uses_it_for_the_dims_columns_and_records_it(model_dir):
    from ser_pipeline.inference import Analyzer

    analyzer = Analyzer(device="cpu", dims_model=MODEL_ID)
    scores = analyzer.analyze(
        np.zeros(16_000 * 5, np.float32) + 0.01, [Segment(0, "window", 0, 3), Segment(1, "window", 3, 5)]
    )
    assert analyzer.models.ids["dims"] == MODEL_ID and analyzer.models.ids["emotion"] != MODEL_ID
    assert scores.columns["valence"] == pytest.approx([0.1, 0.1]) and scores.columns["arousal"] == pytest.approx(
        [0.9, 0.9]
    )


def test_offline_without_the_model_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_MODEL_PATH", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelNotFoundError, match="hf download audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim"):
        Wav2Vec2DimsScorer(Registry.load().get(MODEL_ID), CPU)
