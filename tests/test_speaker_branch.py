"""The speaker branch: utterance statistics z-scored within their speaker, fused with the
emotion network's probabilities for speakers heard often enough in an episode."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ser_pipeline.architectures import SpeakerBranch, SpeakerBranchConfig, fuse_emotions, speaker_zscore
from ser_pipeline.features import utterance_statistics
from ser_pipeline.inference import Analyzer
from ser_pipeline.registry import REGISTRY_FILE, Registry, save_network
from ser_pipeline.schema import EMOTION_PROB_COLUMNS, SENTIMENT_OF_EMOTION, SENTIMENT_PROB_COLUMNS
from ser_pipeline.segmentation import Segment


def test_statistics_have_a_fixed_length_whatever_the_utterance():
    for frames in (0, 1, 2, 50, 900):
        statistics = utterance_statistics(torch.randn(frames, 64), 20)
        assert statistics.shape == (SpeakerBranchConfig().n_features,) and torch.isfinite(statistics).all()


def test_zscores_only_speakers_heard_often_enough():
    statistics = torch.randn(12, 5) * 3 + 7
    speakers = ["a"] * 8 + ["b"] * 3 + ["c"]
    zscored, enough = speaker_zscore(statistics, speakers, min_segments=8)
    assert enough.tolist() == [True] * 8 + [False] * 4
    assert zscored[:8].mean(0) == pytest.approx(torch.zeros(5), abs=1e-5)
    assert zscored[:8].std(0) == pytest.approx(torch.ones(5), abs=1e-3)
    assert torch.equal(zscored[8:], statistics[8:])


def test_fusion_is_a_weighted_geometric_mean():
    network = torch.softmax(torch.randn(4, 7), -1)
    logits = torch.randn(4, 7)
    assert fuse_emotions(network, logits, 0.0) == pytest.approx(network, abs=1e-6)
    assert fuse_emotions(network, logits, 1.0) == pytest.approx(torch.softmax(logits, -1), abs=1e-6)
    half = fuse_emotions(network, logits, 0.5)
    expected = torch.sqrt(network * torch.softmax(logits, -1))
    assert half == pytest.approx(expected / expected.sum(-1, keepdim=True), abs=1e-6)
    sharper = fuse_emotions(network, logits, 0.5, temperature=0.5)
    assert (sharper.max(-1).values >= half.max(-1).values - 1e-6).all()


def registry_with(tmp_path, name: str, branch: dict | None) -> Registry:
    """The packaged registry with ser-crnn-v1's speaker branch replaced (None: without one)."""
    document = json.loads(REGISTRY_FILE.read_text())
    for model in document["models"]:
        if model["id"] == "ser-crnn-v1":
            options = {k: v for k, v in model.get("options", {}).items() if k != "speaker_branch"}
            model["options"] = {**options, "speaker_branch": branch} if branch else options
    (tmp_path / name).write_text(json.dumps(document))
    return Registry.load(tmp_path / name, extra=[])


@pytest.fixture()
def branch_registry(tmp_path, monkeypatch):
    """The packaged registry with ser-crnn-v1 given a (random) speaker branch."""
    torch.manual_seed(0)
    branch = SpeakerBranch()
    torch.nn.init.normal_(branch.linear.weight, std=0.5)
    sha256 = save_network(branch, "speaker-branch", tmp_path / "test-branch.safetensors")
    monkeypatch.setenv("SER_MODEL_PATH", str(tmp_path))
    entry = {
        "id": "test-branch",
        "architecture": "speaker-branch",
        "weights": "test-branch.safetensors",
        "sha256": sha256,
        "tasks": ["emotion-branch"],
    }
    (tmp_path / "extra.json").write_text(json.dumps({"models": [entry]}))
    registry = registry_with(tmp_path, "fused.json", {"model": "test-branch", "sha256": sha256, "weight": 0.5})
    return Registry({**registry.models, **Registry.load(tmp_path / "extra.json", extra=[]).models}, registry.defaults)


def test_segments_of_often_heard_speakers_are_fused_the_rest_keep_the_network(branch_registry, tmp_path):
    rng = np.random.default_rng(0)
    samples = (0.05 * rng.standard_normal(16_000 * 40)).astype(np.float32)
    samples *= np.repeat(rng.uniform(0.2, 2.0, 40), 16_000).astype(np.float32)  # utterances differ
    speakers = ["host"] * 9 + ["guest"] * 3 + [None] * 4
    segments = [Segment(i, "sentence", 2.5 * i, 2.5 * i + 2.0, speaker) for i, speaker in enumerate(speakers)]
    plain = Analyzer(device="cpu", registry=registry_with(tmp_path, "plain.json", None))
    fused = Analyzer(device="cpu", registry=branch_registry)
    assert fused.speaker_branch is not None and plain.speaker_branch is None
    assert fused.model_fingerprints != plain.model_fingerprints  # adding the branch redoes episodes
    a, b = (analyzer.analyze(samples, segments).columns for analyzer in (plain, fused))
    probabilities = list(EMOTION_PROB_COLUMNS)
    before = np.stack([a[c] for c in probabilities], 1)
    after = np.stack([b[c] for c in probabilities], 1)
    assert after.sum(1) == pytest.approx(np.ones(len(segments)), abs=1e-5)
    assert np.abs(after[:9] - before[:9]).max() > 0.01  # the host's segments: fused
    assert after[9:] == pytest.approx(before[9:], abs=1e-6)  # guest (3 segments) and unknown: the network's
    assert b["valence"] == pytest.approx(a["valence"], abs=1e-6)  # dimensions untouched
    sentiment = np.stack([b[c] for c in SENTIMENT_PROB_COLUMNS], 1)
    assert sentiment[:9] == pytest.approx(after[:9] @ SENTIMENT_OF_EMOTION, abs=1e-5)  # from the fused emotions
    assert b["p_positive"][9:] == pytest.approx(a["p_positive"][9:], abs=1e-6)  # the others: the head's
    # Scoring the host's segments alone gives the same fused values (their baseline is their own).
    alone = fused.analyze(samples, segments[:9]).columns
    assert np.stack([alone[c] for c in probabilities], 1) == pytest.approx(after[:9], abs=1e-5)


def test_a_baseline_mask_picks_the_utterances_that_define_each_speakers_usual_voice():
    statistics = torch.tensor([[0.0], [2.0], [10.0], [1.0], [3.0]])
    baseline = torch.tensor([True, True, False, True, True])
    zscored, _ = speaker_zscore(statistics, ["a", "a", "a", "b", "b"], 1, baseline)
    sd = torch.tensor([0.0, 2.0]).std() + 1e-4
    assert zscored[:3, 0] == pytest.approx(((statistics[:3, 0] - 1.0) / sd).tolist(), abs=1e-4)  # from rows 0, 1 only
