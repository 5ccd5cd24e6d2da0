"""The episode-level steps as functions of arrays, with known answers: speaker context, the
speaker branch's fusion, the dims calibration (`ser_pipeline.episode_steps`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ser_pipeline.architectures import SpeakerBranch, SpeakerBranchConfig
from ser_pipeline.episode_steps import (
    BranchFusion,
    HeadReading,
    Readings,
    calibrate_episode_dims,
    fuse_with_speaker_branch,
    read_with_speaker_context,
)
from ser_pipeline.schema import SENTIMENT_OF_EMOTION

CPU = torch.device("cpu")


def readings(rows: int, seed: int = 0) -> Readings:
    rng = np.random.default_rng(seed)
    emotion = rng.dirichlet(np.ones(7), rows).astype(np.float32)
    sentiment = rng.dirichlet(np.ones(3), rows).astype(np.float32)
    return Readings(emotion, sentiment, rng.uniform(0, 1, (rows, 3)).astype(np.float32))


def test_a_head_reading_is_a_softmax_at_each_heads_temperature_with_dims_only_if_they_are_the_networks():
    out = {"emotion": torch.log(torch.tensor([[1.0, 3.0]])), "sentiment": torch.zeros(1, 3), "dims": torch.ones(1, 3)}
    reading = HeadReading({"emotion": 0.5, "sentiment": 1.0}, with_dims=False)(out)
    # softmax(log p / 0.5) = p^2 renormalised: 1 : 9
    assert reading["emotion"] == pytest.approx(np.array([[0.1, 0.9]]), abs=1e-6)
    assert reading["sentiment"] == pytest.approx(np.full((1, 3), 1 / 3), abs=1e-6)
    assert "dims" not in reading
    assert HeadReading({"emotion": 1.0, "sentiment": 1.0}, with_dims=True)(out)["dims"].tolist() == [[1.0, 1.0, 1.0]]


def test_speaker_context_reads_each_segment_of_an_often_heard_speaker_against_the_mean_of_its_others():
    descriptions = np.arange(10, dtype=np.float32).reshape(5, 2)
    speakers = ["a", "a", "a", None, "b"]  # b: once, too rarely heard
    seen = {}

    def heads(description, relative):
        seen["description"], seen["relative"] = description, relative
        # emotion logits whose argmax is where the relative description's first value is biggest
        emotion = torch.nn.functional.one_hot(torch.tensor([0, 1, 2]), 7).float() * 50
        return {"emotion": emotion, "sentiment": torch.zeros(3, 3)}

    before = readings(5)
    after = read_with_speaker_context(
        heads, HeadReading({"emotion": 1.0, "sentiment": 1.0}, False), 2, before, descriptions, speakers, CPU
    )
    # the rows of "a", each against the mean of the other two: row 0 = [0,1] - mean([2,3],[4,5]) = [-3,-3]
    assert seen["description"].tolist() == descriptions[:3].tolist()
    assert seen["relative"].tolist() == [[-3.0, -3.0], [0.0, 0.0], [3.0, 3.0]]
    assert after.emotion[:3].argmax(1).tolist() == [0, 1, 2]
    assert after.sentiment[:3] == pytest.approx(np.full((3, 3), 1 / 3), abs=1e-6)
    assert np.array_equal(after.emotion[3:], before.emotion[3:])  # no speaker / heard once: as they were
    assert np.array_equal(after.dims, before.dims)  # dims are not this network's
    assert not np.array_equal(before.emotion[:3], after.emotion[:3])  # the input is not changed in place
    assert before.emotion[:3] == pytest.approx(readings(5).emotion[:3])


def test_without_an_often_heard_speaker_speaker_context_changes_nothing():
    before = readings(3)

    def heads(description, relative):
        raise AssertionError("no segment has a speaker heard often enough")

    reading = HeadReading({"emotion": 1.0, "sentiment": 1.0}, False)
    after = read_with_speaker_context(heads, reading, 8, before, np.zeros((3, 4), np.float32), ["a", "a", None], CPU)
    assert after is before


def branch(n_statistics: int, dims: bool) -> SpeakerBranch:
    """A branch whose emotion logits are 0 (uniform) and whose dims are 0.9 for every input."""
    network = SpeakerBranch(SpeakerBranchConfig(n_features=n_statistics, min_segments=3, n_dims=3 if dims else 0))
    with torch.no_grad():
        network.linear.weight.zero_()
        network.linear.bias.zero_()
        if dims:
            network.dims.weight.zero_()
            network.dims.bias.fill_(0.9)
    return network.eval()


@pytest.mark.parametrize("fuses_dims", [False, True])
def test_the_branch_fuses_often_heard_speakers_by_a_weighted_geometric_mean(fuses_dims):
    before = readings(6)
    speakers = ["host"] * 3 + ["guest"] * 2 + [None]  # the guest has fewer than min_segments = 3
    statistics = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    fusion = BranchFusion(branch(4, dims=True), weight=0.5, temperature=1.0, fuses_dims=fuses_dims)
    fused = fuse_with_speaker_branch(fusion, before, statistics, speakers, CPU)
    # with uniform branch logits and weight 1/2 the fused probabilities are sqrt(p), renormalised
    expected = np.sqrt(before.emotion[:3])
    expected /= expected.sum(1, keepdims=True)
    assert fused.readings.emotion[:3] == pytest.approx(expected, abs=1e-6)
    assert fused.readings.sentiment[:3] == pytest.approx(expected @ SENTIMENT_OF_EMOTION, abs=1e-6)
    assert np.array_equal(fused.readings.emotion[3:], before.emotion[3:])
    assert np.array_equal(fused.readings.sentiment[3:], before.sentiment[3:])
    if fuses_dims:  # averaged with the branch's 0.9, uncalibrated
        assert fused.dims_rows == [0, 1, 2]
        assert fused.readings.dims[:3] == pytest.approx((before.dims[:3] + 0.9) / 2, abs=1e-6)
    else:
        assert fused.dims_rows == []
        assert np.array_equal(fused.readings.dims, before.dims)
    assert np.array_equal(fused.readings.dims[3:], before.dims[3:])


def test_no_known_speaker_or_none_heard_often_enough_leaves_the_readings():
    before = readings(4)
    fusion = BranchFusion(branch(4, dims=True), weight=0.5, temperature=1.0, fuses_dims=True)
    statistics = np.zeros((4, 4), np.float32)
    for speakers in ([None] * 4, ["a", "a", "b", "b"]):
        fused = fuse_with_speaker_branch(fusion, before, statistics, speakers, CPU)
        assert fused.readings is before and fused.dims_rows == []


def test_calibration_maps_every_row_by_the_network_affine_and_fused_rows_by_their_own():
    dims = np.array([[0.5, 0.5, 0.5], [0.2, 0.4, 0.9], [0.5, 0.5, 0.5]], np.float32)
    calibration = {
        "network": {"scale": [2.0, 2.0, 2.0], "shift": [-0.25, -0.25, -0.25]},
        "fused": {"scale": [0.0, 1.0, 1.0], "shift": [0.3, 0.0, 0.05]},
    }
    calibrated = calibrate_episode_dims(dims, calibration, fused_rows=[2])
    assert calibrated[0] == pytest.approx([0.75, 0.75, 0.75])
    assert calibrated[1] == pytest.approx([0.15, 0.55, 1.0])  # 2 * 0.9 - 0.25 = 1.55, kept within 0..1
    assert calibrated[2] == pytest.approx([0.3, 0.5, 0.55])
    assert calibrated.dtype == np.float32
    assert np.array_equal(calibrate_episode_dims(dims, {}, [2]), dims)  # no calibration: unchanged
