"""The speaker branch: utterance statistics (and the network's emotion log-probabilities)
z-scored within their speaker, fused with the emotion network's probabilities for speakers
heard often enough in an episode."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import SHARED_DATA, needs_shared
from ser_pipeline.architectures import SpeakerBranch, SpeakerBranchConfig, fuse_emotions, speaker_zscore
from ser_pipeline.features import utterance_statistics
from ser_pipeline.inference import Analyzer
from ser_pipeline.registry import REGISTRY_FILE, Registry, save_network
from ser_pipeline.schema import DIMENSIONS, EMOTION_PROB_COLUMNS, EMOTIONS, SENTIMENT_OF_EMOTION, SENTIMENT_PROB_COLUMNS
from ser_pipeline.segmentation import Segment
from ser_pipeline.training.data import Clip
from ser_pipeline.training.emotion import in_condition
from ser_pipeline.training.speaker_branch import (
    branch_config,
    clip_statistics,
    fit_branch,
    network_probabilities,
    zscored_inputs,
)


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


KEEP = object()


NETWORK = "ser-crnn-v3"  # the embedded emotion network whose speaker branch these tests replace


def registry_with(tmp_path, name: str, branch: dict | None, dims_calibration=KEEP) -> Registry:
    """The packaged registry with the embedded network (`ser-crnn-v3`) as the default emotion and
    dims model, its speaker branch replaced (None: without one), and its dims calibration too
    unless KEEP (None: without one)."""
    replaced = {
        "speaker_branch": branch,
        **({} if dims_calibration is KEEP else {"dims_calibration": dims_calibration}),
    }
    document = json.loads(REGISTRY_FILE.read_text())
    document["defaults"] |= {"emotion": NETWORK, "dims": NETWORK}
    for model in document["models"]:
        if model["id"] == NETWORK:
            options = {k: v for k, v in model.get("options", {}).items() if k not in replaced}
            model["options"] = {**options, **{k: v for k, v in replaced.items() if v}}
    (tmp_path / name).write_text(json.dumps(document))
    return Registry.load(tmp_path / name, extra=[])


def make_branch_registry(
    tmp_path, n_dims: int = 0, dims_calibration=KEEP, branch: SpeakerBranch | None = None
) -> Registry:
    """The packaged registry with the default emotion model given a speaker branch (default a
    random one, with a dims head when `n_dims`)."""
    if branch is None:
        torch.manual_seed(0)
        branch = SpeakerBranch(SpeakerBranchConfig(n_dims=n_dims))
        torch.nn.init.normal_(branch.linear.weight, std=0.5)
        if n_dims:
            torch.nn.init.normal_(branch.dims.weight, std=0.05)
    name = f"test-branch-{n_dims}-{branch.config.network_inputs}"
    sha256 = save_network(branch, "speaker-branch", tmp_path / f"{name}.safetensors")
    entry = {
        "id": name,
        "architecture": "speaker-branch",
        "weights": f"{name}.safetensors",
        "sha256": sha256,
        "tasks": ["emotion-branch"],
    }
    (tmp_path / f"{name}.json").write_text(json.dumps({"models": [entry]}))
    option = {"model": name, "sha256": sha256, "weight": 0.5}
    registry = registry_with(tmp_path, f"fused-{name}.json", option, dims_calibration)
    return Registry({**registry.models, **Registry.load(tmp_path / f"{name}.json", extra=[]).models}, registry.defaults)


@pytest.fixture()
def branch_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_MODEL_PATH", str(tmp_path))
    return make_branch_registry(tmp_path)


def episode_of_speakers(speakers: list[str | None]) -> tuple[np.ndarray, list[Segment]]:
    """40 s of noise whose level changes every second (utterances differ), a 2 s segment every 2.5 s."""
    rng = np.random.default_rng(0)
    samples = (0.05 * rng.standard_normal(16_000 * 40)).astype(np.float32)
    samples *= np.repeat(rng.uniform(0.2, 2.0, 40), 16_000).astype(np.float32)
    return samples, [Segment(i, "sentence", 2.5 * i, 2.5 * i + 2.0, speaker) for i, speaker in enumerate(speakers)]


def test_segments_of_often_heard_speakers_are_fused_the_rest_keep_the_network(branch_registry, tmp_path):
    samples, segments = episode_of_speakers(["host"] * 9 + ["guest"] * 3 + [None] * 4)
    plain = Analyzer(device="cpu", registry=registry_with(tmp_path, "plain.json", None))
    fused = Analyzer(device="cpu", registry=branch_registry)
    assert fused.models.branch is not None and plain.models.branch is None
    assert fused.models.fingerprints != plain.models.fingerprints  # adding the branch redoes episodes
    a, b = (analyzer.analyze(samples, segments).columns for analyzer in (plain, fused))
    probabilities = list(EMOTION_PROB_COLUMNS)
    before = np.stack([a[c] for c in probabilities], 1)
    after = np.stack([b[c] for c in probabilities], 1)
    assert after.sum(1) == pytest.approx(np.ones(len(segments)), abs=1e-5)
    assert np.abs(after[:9] - before[:9]).max() > 0.01  # the host's segments: fused
    assert after[9:] == pytest.approx(before[9:], abs=1e-6)  # guest (3 segments) and unknown: the network's
    assert b["valence"] == pytest.approx(a["valence"], abs=1e-6)  # a branch without a dims head: dims untouched
    sentiment = np.stack([b[c] for c in SENTIMENT_PROB_COLUMNS], 1)
    assert sentiment[:9] == pytest.approx(after[:9] @ SENTIMENT_OF_EMOTION, abs=1e-5)  # from the fused emotions
    assert b["p_positive"][9:] == pytest.approx(a["p_positive"][9:], abs=1e-6)  # the others: the head's
    # Scoring the host's segments alone gives the same fused values (their baseline is their own).
    alone = fused.analyze(samples, segments[:9]).columns
    assert np.stack([alone[c] for c in probabilities], 1) == pytest.approx(after[:9], abs=1e-5)


def test_a_branch_reading_the_network_hears_each_emotion_relative_to_the_speakers_other_utterances(
    tmp_path, monkeypatch
):
    """A branch that reads only the network's log-probabilities (one weight per emotion): the
    pipeline must hand it those of the same segments, after the statistics, z-scored over the
    speaker's segments, and fuse the result with the network's probabilities."""
    monkeypatch.setenv("SER_MODEL_PATH", str(tmp_path))
    samples, segments = episode_of_speakers(["host"] * 9 + [None] * 3)
    config = branch_config(network_inputs=True, n_dims=0)
    branch = SpeakerBranch(config)
    with torch.no_grad():
        branch.linear.weight.zero_()
        branch.linear.weight[:, config.n_statistics :] = 2 * torch.eye(len(EMOTIONS))
        branch.linear.bias.zero_()
    fused = Analyzer(device="cpu", registry=make_branch_registry(tmp_path, branch=branch))
    plain = Analyzer(device="cpu", registry=registry_with(tmp_path, "plain.json", None))
    network, after = (
        np.stack([analyzer.analyze(samples, segments).columns[c] for c in EMOTION_PROB_COLUMNS], 1)
        for analyzer in (plain, fused)
    )
    log_probs = torch.log(torch.from_numpy(network[:9]))
    relative = (log_probs - log_probs.mean(0)) / (log_probs.std(0) + 1e-4)
    expected = fuse_emotions(torch.from_numpy(network[:9]), 2 * relative, 0.5, fused.models.branch.temperature)
    assert after[:9] == pytest.approx(expected.numpy(), abs=2e-4)
    assert np.abs(after[:9] - network[:9]).max() > 0.01
    assert after[9:] == pytest.approx(network[9:], abs=1e-6)


def test_fitted_branch_reads_the_network_probabilities_after_the_statistics():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, len(EMOTIONS), 700)
    network = np.full((700, len(EMOTIONS)), 0.3 / (len(EMOTIONS) - 1), np.float32)
    network[np.arange(700), truth] = 0.7  # the network is right; the statistics are noise
    statistics = torch.randn(700, SpeakerBranchConfig().n_statistics)
    zscored = zscored_inputs(statistics, network, [f"actor-{i % 10}" for i in range(700)])
    assert zscored.shape == (700, branch_config(network_inputs=True).n_features)
    branch = fit_branch(zscored, [EMOTIONS[i] for i in truth], network_inputs=len(EMOTIONS))
    assert branch.config.network_inputs == len(EMOTIONS)
    with torch.no_grad():
        assert (branch(zscored).argmax(1).numpy() == truth).mean() > 0.95
    assert zscored_inputs(statistics, None, ["a"] * 700).shape == statistics.shape  # the v2 input


def test_network_probabilities_come_from_the_cross_validation_and_every_clip_needs_one(tmp_path):
    document = {
        "temperatures": {"emotion": 0.5},
        "folds": [
            {"clips": [{"file": "a.flac"}], "predictions": {"emotion": [[0.0, 1.0, 0, 0, 0, 0, 0]]}},
            {"clips": [{"file": "b.flac"}], "predictions": {"emotion": [[2.0, 0, 0, 0, 0, 0, 0]]}},
        ],
    }
    clips = [Clip(tmp_path / name, "neutral", "ravdess-01", "ravdess") for name in ("b.flac", "a.flac")]
    probs = network_probabilities(document, clips)
    assert probs.shape == (2, 7) and probs.sum(1) == pytest.approx([1, 1], abs=1e-6)
    assert probs[0, 0] == pytest.approx(np.exp(4) / (np.exp(4) + 6), rel=1e-5)  # logits / temperature
    assert probs[1].argmax() == 1
    with pytest.raises(ValueError, match="no cross-validated network outputs"):
        network_probabilities(document, [Clip(tmp_path / "c.flac", "sad", "ravdess-02", "ravdess")])


def test_a_condition_lays_a_stretch_of_its_noise_bed_under_the_samples_at_its_gain():
    bed = np.arange(100, dtype=np.float32)
    out = in_condition(np.ones(30, np.float32), (2.0, bed), np.random.default_rng(0))
    stretch = out - 2.0
    assert np.array_equal(stretch, np.arange(stretch[0], stretch[0] + 30)), stretch
    looped = in_condition(np.zeros(250, np.float32), (1.0, bed), np.random.default_rng(0))
    assert np.array_equal(looped, np.tile(bed, 3)[int(looped[0]) : int(looped[0]) + 250])  # the bed loops
    assert np.array_equal(in_condition(np.ones(5, np.float32), (0.5, None), np.random.default_rng(0)), np.full(5, 0.5))


def test_branch_training_puts_each_speaker_in_one_room_per_noisy_copy(tmp_path):
    """The noisy copies of a speaker's clips share one noise (level and colour) per room, as an
    episode's sentences of one speaker do; the top mel bands of a low tone hear only that noise."""
    seconds = np.arange(32000) / 16000
    tone = np.pad(0.1 * np.sin(2 * np.pi * 220 * seconds), 8000).astype(np.float32)
    clips = []
    for speaker in ("ravdess-01", "ravdess-02"):
        for take in range(3):
            path = tmp_path / f"{speaker}-{take}.flac"
            sf.write(path, tone, 16000)
            clips.append(Clip(path, "neutral", speaker, "ravdess"))
    clean, noisy = clip_statistics(clips, seed=3, rooms=2)
    assert clean.shape == (6, SpeakerBranchConfig().n_features) and noisy.shape == (2, *clean.shape)
    assert torch.equal(clip_statistics(clips, seed=3, rooms=2)[1], noisy)  # seeded
    noise = noisy[:, :, 48:64].mean(-1).reshape(2, 2, 3)  # mean log-mel of the top bands: (room, speaker, take)
    within = (noise.max(-1).values - noise.min(-1).values).max()
    between = noise.mean(-1).max() - noise.mean(-1).min()
    assert within < 0.1 * between, noise
    assert torch.allclose(clean[:3], clean[3:]) and not torch.allclose(noisy[0, :3], clean[:3])


def test_zscores_stay_finite_for_a_single_utterance_or_an_empty_baseline():
    statistics = torch.tensor([[5.0], [1.0], [3.0]])
    zscored, _ = speaker_zscore(statistics, ["alone", "b", "b"], 1, torch.tensor([True, False, False]))
    assert torch.isfinite(zscored).all()
    assert zscored[0, 0] == 0.0  # centred on itself
    assert zscored[1:, 0].tolist() == pytest.approx(
        [-1 / (np.std([1, 3], ddof=1) + 1e-4), 1 / (np.std([1, 3], ddof=1) + 1e-4)]
    )


def test_a_baseline_mask_picks_the_utterances_that_define_each_speakers_usual_voice():
    statistics = torch.tensor([[0.0], [2.0], [10.0], [1.0], [3.0]])
    baseline = torch.tensor([True, True, False, True, True])
    zscored, _ = speaker_zscore(statistics, ["a", "a", "a", "b", "b"], 1, baseline)
    sd = torch.tensor([0.0, 2.0]).std() + 1e-4
    assert zscored[:3, 0] == pytest.approx(((statistics[:3, 0] - 1.0) / sd).tolist(), abs=1e-4)  # from rows 0, 1 only


def test_a_dims_head_moves_the_dims_of_often_heard_speakers_with_their_own_calibration(tmp_path, monkeypatch):
    monkeypatch.setenv("SER_MODEL_PATH", str(tmp_path))
    samples, segments = episode_of_speakers(["host"] * 9 + ["guest"] * 3 + [None] * 4)
    calibration = {
        "network": {"scale": [1.5, 1.5, 1.5], "shift": [-0.25, -0.25, -0.25]},
        "fused": {"scale": [0.0, 0.0, 0.0], "shift": [0.1, 0.2, 0.3]},
    }
    raw_registry = registry_with(tmp_path, "raw.json", None, dims_calibration=None)
    raw, uncalibrated, calibrated = (
        np.stack([analyzer.analyze(samples, segments).columns[d] for d in DIMENSIONS], 1)
        for analyzer in (
            Analyzer(device="cpu", registry=raw_registry),
            Analyzer(device="cpu", registry=make_branch_registry(tmp_path, 3, dims_calibration=None)),
            Analyzer(device="cpu", registry=make_branch_registry(tmp_path, 3, dims_calibration=calibration)),
        )
    )
    assert np.abs(uncalibrated[:9] - raw[:9]).max() > 0.01  # the host's dims: averaged with the branch's
    assert uncalibrated[9:] == pytest.approx(raw[9:], abs=1e-6)  # guest and unknown: the network's
    assert calibrated[:9] == pytest.approx(np.tile([0.1, 0.2, 0.3], (9, 1)), abs=1e-6)  # the fused calibration
    assert calibrated[9:] == pytest.approx(np.clip(1.5 * raw[9:] - 0.25, 0, 1), abs=1e-5)  # the network's


def test_fitted_branch_learns_dims_from_zscored_statistics():
    rng = np.random.default_rng(0)
    zscored = torch.from_numpy(rng.standard_normal((700, SpeakerBranchConfig().n_features)).astype(np.float32))
    labels = [EMOTIONS[i % len(EMOTIONS)] for i in range(700)]
    dims = 0.5 + 0.1 * zscored[:, :3].numpy()  # each dimension read off one statistic
    branch = fit_branch(zscored, labels, dims)
    with torch.no_grad():
        predicted = branch.dimensions(zscored).numpy()
    assert [np.corrcoef(predicted[:, i], dims[:, i])[0, 1] for i in range(3)] == pytest.approx([1, 1, 1], abs=0.02)
    with pytest.raises(ValueError, match="no dimensions head"):
        fit_branch(zscored, labels).dimensions(zscored)


@pytest.mark.slow
@needs_shared
def test_train_speaker_branch_attaches_to_a_network_in_its_own_models_folder(tmp_path):
    """`train speaker-branch --models-dir D --attach M` with M trained into D: the branch, its
    fusion options and the calibration fitted on the held-out actors go into D's registry; the
    project's registry is left alone."""
    from typer.testing import CliRunner

    from ser_pipeline.architectures import EmotionNet, EmotionNetConfig
    from ser_pipeline.cli import app
    from ser_pipeline.training.publish import publish

    torch.manual_seed(0)
    entry = {"tasks": ["emotion", "sentiment", "dims"], "labels": list(EMOTIONS)}
    network = EmotionNet(EmotionNetConfig(speaker_context=1)).eval()
    publish(network, model_id="mine", architecture="emotion-net", models_dir=tmp_path, entry=entry, card_body="x")
    before = REGISTRY_FILE.read_text()
    arguments = ["train", "speaker-branch", "--data", str(SHARED_DATA), "--held-out", "1,2"]
    arguments += ["--models-dir", str(tmp_path), "--attach", "mine", "--model-id", "mine-branch"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert REGISTRY_FILE.read_text() == before
    models = {m["id"]: m for m in json.loads((tmp_path / "registry.json").read_text())["models"]}
    options = models["mine"]["options"]
    assert options["speaker_branch"]["model"] == "mine-branch" and options["speaker_branch"]["weight"] == 0.3
    assert set(options["temperature"]) == {"emotion", "sentiment", "fused_emotion"}
    assert set(options["dims_calibration"]) == {"network", "fused"}
    assert models["mine-branch"]["scores"]["clips"] == 120  # actors 01 and 02
    assert "held-out actors (120 clips" in (tmp_path / "mine-branch.md").read_text()


@pytest.mark.slow
@needs_shared
def test_train_speaker_branch_without_flags_leaves_the_project_models_alone(tmp_path, monkeypatch):
    """No --models-dir and no --publish: everything goes to ./trained-models, the attached
    default network's entry is copied there with its new fusion options."""
    from typer.testing import CliRunner

    from ser_pipeline.cli import app

    before = {p.name: p.read_bytes() for p in REGISTRY_FILE.parent.iterdir() if p.is_file()}
    monkeypatch.chdir(tmp_path)
    arguments = ["train", "speaker-branch", "--data", str(SHARED_DATA), "--held-out", "1,2", "--no-calibrate"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert {p.name: p.read_bytes() for p in REGISTRY_FILE.parent.iterdir() if p.is_file()} == before
    written = tmp_path / "trained-models"
    models = {m["id"]: m for m in json.loads((written / "registry.json").read_text())["models"]}
    assert set(models) == {"ser-crnn-v3", "ser-speaker-branch-v6"}
    assert models["ser-crnn-v3"]["options"]["speaker_branch"]["sha256"] == models["ser-speaker-branch-v6"]["sha256"]
    assert (written / "ser-speaker-branch-v6.safetensors").is_file()


def test_publish_and_a_models_dir_exclude_each_other():
    from typer.testing import CliRunner

    from ser_pipeline.cli import app

    result = CliRunner().invoke(app, ["train", "dims", "--publish", "--models-dir", "x"])
    assert result.exit_code == 2 and "not both" in result.output
