"""Hugging Face audio-classification checkpoints as emotion models, tested offline with tiny
randomly initialised models saved to a temporary directory; and calibration temperatures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

from ser_pipeline.hf_emotion import AudioClassifierScorer, label_matrix
from ser_pipeline.inference import Analyzer
from ser_pipeline.registry import REGISTRY_FILE, ModelNotFoundError, Registry
from ser_pipeline.schema import EMOTIONS, SENTIMENTS
from ser_pipeline.segmentation import Segment

MODEL_ID = "superb-wav2vec2-base-er"
CPU = torch.device("cpu")
RNG = np.random.default_rng(0)


def save_tiny_classifier(folder, labels: list[str]) -> Wav2Vec2ForSequenceClassification:
    config = Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
        conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, classifier_proj_size=16,
        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
    )  # fmt: skip
    torch.manual_seed(0)
    model = Wav2Vec2ForSequenceClassification(config).eval()
    torch.nn.init.normal_(model.classifier.weight, std=2.0)  # outputs that depend on the audio
    model.save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16_000, do_normalize=True, return_attention_mask=False).save_pretrained(
        folder
    )
    return model


@pytest.fixture()
def offline_models(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_MODEL_PATH", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return tmp_path


@pytest.fixture()
def superb_dir(offline_models):
    """A tiny classifier with the label names of superb/wav2vec2-base-superb-er."""
    model = save_tiny_classifier(offline_models / MODEL_ID, ["neu", "hap", "ang", "sad"])
    return offline_models / MODEL_ID, model


def direct_probabilities(model, wav: np.ndarray) -> np.ndarray:
    """The checkpoint's own answer: normalised waveform in, softmax of the logits out."""
    normalised = (wav - wav.mean()) / np.sqrt(wav.var() + 1e-7)
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(normalised)[None]).logits, -1)[0].numpy()


def test_label_names_map_onto_our_emotions():
    matrix = label_matrix({0: "neu", 1: "Happiness", 2: "ang", 3: "other"}, {"other": None}, "m")
    assert matrix.shape == (4, len(EMOTIONS))
    assert matrix[0, EMOTIONS.index("neutral")] == matrix[1, EMOTIONS.index("happy")] == 1
    assert matrix[3].sum() == 0  # mapped to null: ignored
    with pytest.raises(ValueError, match=r'options.label_map \(e.g. "boredom": "neutral"'):
        label_matrix({0: "neu", 1: "boredom"}, {}, "m")
    with pytest.raises(ValueError, match="none of its labels"):
        label_matrix({0: "x"}, {"x": None}, "m")


def test_probabilities_are_the_checkpoints_own_mapped_onto_seven_columns(superb_dir):
    _, model = superb_dir
    scorer = AudioClassifierScorer(Registry.load().get(MODEL_ID), CPU)
    samples = RNG.standard_normal(16_000 * 6).astype(np.float32)
    segments = [Segment(i, "window", 2.0 * i, 2.0 * i + 2) for i in range(3)]
    emotion, sentiment = scorer.score(samples, segments)
    for i in range(3):
        own = direct_probabilities(model, samples[32_000 * i : 32_000 * (i + 1)])
        expected = {"neutral": own[0], "happy": own[1], "angry": own[2], "sad": own[3]}
        assert emotion[i] == pytest.approx([expected.get(e, 0.0) for e in EMOTIONS], abs=1e-5)
    assert emotion.sum(1) == pytest.approx(np.ones(3), abs=1e-5)
    column = {e: emotion[:, EMOTIONS.index(e)] for e in EMOTIONS}
    assert sentiment[:, SENTIMENTS.index("positive")] == pytest.approx(column["happy"], abs=1e-6)
    assert sentiment[:, SENTIMENTS.index("negative")] == pytest.approx(column["angry"] + column["sad"], abs=1e-6)
    # One segment at a time gives what the batch of three gave.
    alone = np.concatenate([scorer.score(samples, [s])[0] for s in segments])
    assert alone == pytest.approx(emotion, abs=1e-5)
    assert len({tuple(np.round(row, 4)) for row in emotion}) == 3  # the audio matters


def test_analyzer_takes_emotion_from_the_classifier_and_dims_from_the_default(superb_dir):
    analyzer = Analyzer(device="cpu", emotion_model=MODEL_ID)
    assert analyzer.models.needs_samples and analyzer.models.emotion_net is None
    samples = (0.1 * RNG.standard_normal(16_000 * 5)).astype(np.float32)
    scores = analyzer.analyze(samples, [Segment(0, "window", 0, 3), Segment(1, "window", 3, 5)])
    assert (
        analyzer.models.ids["emotion"] == MODEL_ID and analyzer.models.ids["dims"] == Registry.load().defaults["dims"]
    )
    assert scores.columns["p_fear"] == pytest.approx([0, 0]) and set(scores.columns["emotion"]) <= {
        "neutral",
        "happy",
        "angry",
        "sad",
    }
    assert np.all((scores.columns["valence"] > 0) & (scores.columns["valence"] < 1))  # from the embedded default


def test_a_users_own_registry_file_adds_a_checkpoint_with_its_label_map(offline_models, monkeypatch):
    model = save_tiny_classifier(offline_models / "my-classifier", ["LABEL_0", "LABEL_1", "LABEL_2"])
    registry_file = offline_models / "my-registry.json"
    entry = {
        "id": "my-classifier",
        "architecture": "hf-audio-classification",
        "weights": "someone/my-classifier",
        "tasks": ["emotion", "sentiment"],
        "options": {
            "label_map": {"LABEL_0": "surprise", "LABEL_1": None, "LABEL_2": "disgust"},
            "temperature": {"emotion": 2.0},
        },
    }
    registry_file.write_text(json.dumps({"models": [entry], "defaults": {"emotion": "my-classifier"}}))
    monkeypatch.setenv("SER_REGISTRY", str(registry_file))
    registry = Registry.load()
    assert registry.default("emotion").id == "my-classifier" and "ser-crnn-v1" in registry.models
    scorer = AudioClassifierScorer(registry.get("my-classifier"), CPU)
    samples = RNG.standard_normal(32_000).astype(np.float32)
    emotion, _ = scorer.score(samples, [Segment(0, "window", 0, 2)])
    with torch.no_grad():
        normalised = (samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)
        logits = model(torch.from_numpy(normalised)[None]).logits[0].numpy()
    own = np.exp(logits / 2.0) / np.exp(logits / 2.0).sum()  # the temperature applies
    surprise, disgust = own[0] / (own[0] + own[2]), own[2] / (own[0] + own[2])  # LABEL_1 ignored
    assert emotion[0, EMOTIONS.index("surprise")] == pytest.approx(surprise, abs=1e-5)
    assert emotion[0, EMOTIONS.index("disgust")] == pytest.approx(disgust, abs=1e-5)
    with pytest.raises(ValueError, match="does not do dims"):
        registry.choose("dims", "my-classifier")


def test_a_broken_registry_file_is_named(tmp_path, monkeypatch):
    (tmp_path / "bad.json").write_text("{not json")
    monkeypatch.setenv("SER_REGISTRY", str(tmp_path / "bad.json"))
    with pytest.raises(ValueError, match="bad.json"):
        Registry.load()


def test_offline_without_the_checkpoint_says_how_to_get_it(offline_models):
    with pytest.raises(ModelNotFoundError, match="hf download superb/wav2vec2-base-superb-er"):
        Analyzer(device="cpu", emotion_model=MODEL_ID)


def test_a_hub_model_without_a_pinned_revision_is_never_downloaded(tmp_path, monkeypatch):
    import transformers

    monkeypatch.setenv("SER_MODEL_PATH", str(tmp_path))  # no local copy
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    fetched = []
    monkeypatch.setattr(transformers.AutoFeatureExtractor, "from_pretrained", lambda *a, **k: fetched.append(a))
    monkeypatch.setattr(
        transformers.AutoModelForAudioClassification, "from_pretrained", lambda *a, **k: fetched.append(a)
    )
    assert Registry.load().get(MODEL_ID).revision is None
    with pytest.raises(ModelNotFoundError, match="no pinned revision"):
        Analyzer(device="cpu", emotion_model=MODEL_ID)
    assert fetched == []


def test_temperatures_in_the_registry_calibrate_the_embedded_network(tmp_path):
    document = json.loads(REGISTRY_FILE.read_text())
    default = "ser-crnn-v3"  # the embedded network
    document["defaults"] |= {"emotion": default, "dims": default}
    plain = dict(document, models=[dict(m, options={}) if m["id"] == default else m for m in document["models"]])
    warm = dict(
        document,
        models=[
            dict(m, options={"temperature": {"emotion": 2.0, "sentiment": 0.5}}) if m["id"] == default else m
            for m in document["models"]
        ],
    )
    (tmp_path / "plain.json").write_text(json.dumps(plain))
    (tmp_path / "warm.json").write_text(json.dumps(warm))
    features, lengths = torch.randn(3, 200, 84), torch.tensor([200, 150, 90])
    outputs = {}
    for name in ("plain", "warm"):
        analyzer = Analyzer(device="cpu", registry=Registry.load(tmp_path / f"{name}.json", extra=[]))
        outputs[name] = analyzer.emotion_batch(features, lengths)
    log_plain = np.log(outputs["plain"]["emotion"])
    expected = np.exp(log_plain / 2.0) / np.exp(log_plain / 2.0).sum(1, keepdims=True)
    assert outputs["warm"]["emotion"] == pytest.approx(expected, abs=1e-5)
    assert outputs["warm"]["sentiment"].max(1).mean() > outputs["plain"]["sentiment"].max(1).mean()  # sharper
    assert outputs["warm"]["dims"] == pytest.approx(outputs["plain"]["dims"])
    fingerprints = [
        Analyzer(device="cpu", registry=Registry.load(tmp_path / f"{n}.json", extra=[])) for n in ("plain", "warm")
    ]
    assert (
        fingerprints[0].models.fingerprints != fingerprints[1].models.fingerprints
    )  # a new temperature redoes episodes
