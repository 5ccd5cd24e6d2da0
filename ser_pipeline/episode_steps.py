"""The episode-level steps after each segment was scored alone, in the order `Analyzer` runs them:

1. `read_with_speaker_context`: a speaker-context network reads each segment of an often heard
   speaker against the mean of that speaker's other segments;
2. `fuse_with_speaker_branch`: the speaker branch's reading of how each segment departs from its
   speaker's usual voice is fused with the network's emotion probabilities (and dims);
3. `calibrate_episode_dims`: dims mapped by the model's calibration ("network" for every
   segment, "fused" for those whose dims the branch joined).

Each is a function of arrays (one row per segment) and the models it needs; none changes its
inputs. Segments of unknown (None) or rarely heard speakers keep the reading they had.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from ser_pipeline.architectures import (
    SpeakerBranch,
    branch_features,
    calibrate_dims,
    fuse_dims,
    fuse_emotions,
    speaker_relative,
    speaker_zscore,
)
from ser_pipeline.devices import autocast_for
from ser_pipeline.schema import SENTIMENT_OF_EMOTION


@dataclass(frozen=True)
class Readings:
    """An episode's emotion and sentiment probabilities and its dims, one row per segment."""

    emotion: np.ndarray  # (segments, 7)
    sentiment: np.ndarray  # (segments, 3)
    dims: np.ndarray  # (segments, 3) valence, arousal, dominance


@dataclass(frozen=True)
class HeadReading:
    """How an emotion network's head outputs become the pipeline's readings: emotion and
    sentiment probabilities by a softmax at the model's temperatures, and the dims head's values
    where the dims are this network's (else another model gives them)."""

    temperatures: dict[str, float]  # "emotion" and "sentiment"
    with_dims: bool

    def __call__(self, out: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        result = {
            head: torch.softmax(out[head].float() / temperature, -1).cpu().numpy()
            for head, temperature in self.temperatures.items()
        }
        if self.with_dims:
            result["dims"] = out["dims"].float().cpu().numpy()
        return result


@torch.inference_mode()
def read_with_speaker_context(
    heads: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]],
    reading: HeadReading,
    min_segments: int,
    readings: Readings,
    descriptions: np.ndarray,
    speakers: list[str | None],
    device: torch.device,
) -> Readings:
    """Segments whose speaker is heard in at least `min_segments` segments read again by the
    network's `heads(description, relative)`, each against the mean of its speaker's other
    segments' descriptions (`architectures.speaker_relative`); the others keep `readings`."""
    description = torch.from_numpy(descriptions)
    relative, rows = speaker_relative(description, speakers, min_segments)
    if not rows:
        return readings
    with autocast_for(device):
        out = heads(description[rows].to(device), relative[rows].to(device))
    columns = {"emotion": readings.emotion.copy(), "sentiment": readings.sentiment.copy(), "dims": readings.dims.copy()}
    for name, values in reading(out).items():
        columns[name][rows] = values
    return Readings(**columns)


@dataclass(frozen=True)
class BranchFusion:
    """A speaker branch and how it joins the network: its share of the weighted geometric mean
    (and of the dims), the fused probabilities' calibration temperature, and whether it moves
    the dims (it has a dims head and the dims are the emotion network's)."""

    network: SpeakerBranch
    weight: float
    temperature: float
    fuses_dims: bool


@dataclass(frozen=True)
class Fused:
    """The readings after the branch joined in, and the rows whose dims it moved (these take the
    "fused" calibration)."""

    readings: Readings
    dims_rows: list[int]


@torch.inference_mode()
def fuse_with_speaker_branch(
    branch: BranchFusion,
    readings: Readings,
    statistics: np.ndarray,
    speakers: list[str | None],
    device: torch.device,
) -> Fused:
    """Emotion probabilities of segments whose speaker has at least the branch's `min_segments`
    fused with the branch's reading of how each departs from that speaker's baseline
    (`fuse_emotions`), their sentiment summed from the fused emotions (cross-validated: UAR 0.78
    against 0.73 from the sentiment head), and, if the branch fuses dims, their dims averaged
    with the branch's (`fuse_dims`, uncalibrated)."""
    known = [i for i, s in enumerate(speakers) if s is not None]
    if not known:
        return Fused(readings, [])
    config = branch.network.config
    features = branch_features(statistics[known], readings.emotion[known], config)
    zscored, enough = speaker_zscore(torch.from_numpy(features), [speakers[i] for i in known], config.min_segments)
    rows = [known[i] for i in torch.nonzero(enough).flatten().tolist()]
    if not rows:
        return Fused(readings, [])
    branch_input = zscored[enough].to(device)
    logits = branch.network(branch_input).float().cpu()
    emotion, sentiment = readings.emotion.copy(), readings.sentiment.copy()
    emotion[rows] = fuse_emotions(torch.from_numpy(emotion[rows]), logits, branch.weight, branch.temperature).numpy()
    sentiment[rows] = emotion[rows] @ SENTIMENT_OF_EMOTION
    fused = replace(readings, emotion=emotion, sentiment=sentiment)
    if not branch.fuses_dims:
        return Fused(fused, [])
    dims = readings.dims.copy()
    dims[rows] = fuse_dims(dims[rows], branch.network.dimensions(branch_input).float().cpu().numpy(), branch.weight)
    return Fused(replace(fused, dims=dims), rows)


def calibrate_episode_dims(dims: np.ndarray, calibration: dict, fused_rows: list[int]) -> np.ndarray:
    """Dims mapped by the "network" affine, and the rows in `fused_rows` by the "fused" one
    (`architectures.calibrate_dims`; an affine that is absent leaves its rows as they are)."""
    calibrated = calibrate_dims(dims, calibration.get("network"))
    if fused_rows:
        calibrated = calibrated.copy()
        calibrated[fused_rows] = calibrate_dims(dims[fused_rows], calibration.get("fused"))
    return calibrated
