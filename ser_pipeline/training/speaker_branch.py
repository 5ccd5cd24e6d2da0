"""Recipe: the speaker branch of the emotion model, a linear classifier of utterance statistics
z-scored within their speaker (`architectures.SpeakerBranch`), fused with the network's output.

RAVDESS only: TESS has two speakers, too few to learn how voices depart from their own
baseline. Each actor's clips give that actor's baseline. Trained with scikit-learn's logistic
regression (balanced classes, C = 0.1) and copied into a torch module for inference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ser_pipeline.architectures import SpeakerBranch, SpeakerBranchConfig, fuse_emotions, speaker_zscore
from ser_pipeline.features import FrontEndConfig, LogMel, utterance_statistics, voiced_span
from ser_pipeline.metrics import accuracy, unweighted_average_recall
from ser_pipeline.schema import EMOTION_TO_SENTIMENT, EMOTIONS, SENTIMENTS
from ser_pipeline.training.data import Clip, ravdess_clips, read_clip

BRANCH_WEIGHT = 0.5  # the branch's share of the fused log-probabilities; fixed, not tuned
REGULARISATION_C = 0.1


def clip_statistics(clips: list[Clip]) -> torch.Tensor:
    """`utterance_statistics` of each clip's voiced part, as the pipeline computes it per segment."""
    config = FrontEndConfig()
    front_end = LogMel(config)
    rows = []
    for clip in clips:
        logmel = front_end.episode(read_clip(clip.path), torch.device("cpu"))
        rows.append(utterance_statistics(logmel[slice(*voiced_span(logmel))], config.n_mfcc))
    return torch.stack(rows)


def fit_branch(zscored: torch.Tensor, labels: list[str], config: SpeakerBranchConfig = SpeakerBranchConfig()):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(zscored.numpy())
    model = LogisticRegression(C=REGULARISATION_C, max_iter=3000, class_weight="balanced")
    model.fit(scaler.transform(zscored.numpy()), [EMOTIONS.index(label) for label in labels])
    if list(model.classes_) != list(range(len(EMOTIONS))):
        raise ValueError("the training clips do not hold every emotion")
    branch = SpeakerBranch(config)
    with torch.no_grad():
        branch.mean.copy_(torch.from_numpy(scaler.mean_))
        branch.scale.copy_(torch.from_numpy(scaler.scale_))
        branch.linear.weight.copy_(torch.from_numpy(model.coef_))
        branch.linear.bias.copy_(torch.from_numpy(model.intercept_))
    return branch.eval()


def train_branch(data: Path, held_out_actors: tuple[int, ...]) -> tuple[SpeakerBranch, list[Clip], torch.Tensor]:
    """The branch trained on every RAVDESS actor but the held-out ones."""
    held_out = {f"ravdess-{a:02d}" for a in held_out_actors}
    clips = [c for c in ravdess_clips(data) if c.speaker not in held_out]
    statistics = clip_statistics(clips)
    zscored, _ = speaker_zscore(statistics, [c.speaker for c in clips], min_segments=1)
    return fit_branch(zscored, [c.label for c in clips]), clips, statistics


def _neutral_heavy_zscore(statistics: torch.Tensor, clips: list[Clip], rng: np.random.Generator) -> torch.Tensor:
    """Z-scores whose speaker baseline comes from the speaker's neutral clips and a quarter of the
    others (half neutral), as a podcast speaker talks mostly calmly: a check that the branch
    does not rely on RAVDESS giving every actor every emotion in equal measure."""
    out = statistics.clone()
    for speaker in {c.speaker for c in clips}:
        rows = [i for i, c in enumerate(clips) if c.speaker == speaker]
        neutral = [i for i in rows if clips[i].label == "neutral"]
        others = [i for i in rows if clips[i].label != "neutral"]
        basis = statistics[neutral + list(rng.choice(others, len(others) // 4, replace=False))]
        out[rows] = (statistics[rows] - basis.mean(0)) / (basis.std(0) + 1e-4)
    return out


def cross_validate_branch(document: dict, data: Path) -> dict:
    """The branch and its fusion with the network, on the cross-validation's folds: each fold's
    branch is trained without the fold's actors and fused with that fold's network outputs."""
    from ser_pipeline.training.crossval import softmax

    clips = {c.path.name: c for c in ravdess_clips(data)}
    every = list(clips.values())
    statistics = clip_statistics(every)
    row_of = {c.path.name: i for i, c in enumerate(every)}
    speakers = [c.speaker for c in every]
    balanced, _ = speaker_zscore(statistics, speakers, min_segments=1)
    heavy = _neutral_heavy_zscore(statistics, every, np.random.default_rng(0))
    temperature = document["temperatures"]["emotion"]
    truth, outputs = [], {"network": [], "branch": [], "fused": [], "branch (neutral-heavy baseline)": []}
    outputs["fused (neutral-heavy baseline)"] = []
    for fold in document["folds"]:
        held = {f"ravdess-{a:02d}" for a in fold["held_out"]}
        train_rows = [i for i, s in enumerate(speakers) if s not in held]
        branch = fit_branch(balanced[train_rows], [every[i].label for i in train_rows])
        rows = [row_of[c["file"]] for c in fold["clips"]]
        network = torch.from_numpy(softmax(np.asarray(fold["predictions"]["emotion"]), temperature))
        truth += [c["label"] for c in fold["clips"]]
        outputs["network"].append(network)
        with torch.no_grad():
            for suffix, zscored in (("", balanced), (" (neutral-heavy baseline)", heavy)):
                logits = branch(zscored[rows])
                outputs["branch" + suffix].append(torch.softmax(logits, -1))
                outputs["fused" + suffix].append(fuse_emotions(network, logits, BRANCH_WEIGHT))
    from ser_pipeline.training.crossval import calibrate_head

    fused = torch.cat(outputs["fused"]).numpy()
    fused_temperature, calibration = calibrate_head(np.log(fused + 1e-12), [EMOTIONS.index(t) for t in truth])
    scores = {}
    for name, parts in outputs.items():
        probs = torch.cat(parts).numpy()
        predicted = [EMOTIONS[i] for i in probs.argmax(1)]
        sentiment = probs @ np.array([[EMOTION_TO_SENTIMENT[e] == s for s in SENTIMENTS] for e in EMOTIONS], float)
        sentiment_truth = [EMOTION_TO_SENTIMENT[t] for t in truth]
        sentiment_predicted = [SENTIMENTS[i] for i in sentiment.argmax(1)]
        scores[name] = {
            "emotion_uar": unweighted_average_recall(truth, predicted, EMOTIONS),
            "emotion_accuracy": accuracy(truth, predicted),
            "sentiment_uar_from_emotions": unweighted_average_recall(sentiment_truth, sentiment_predicted, SENTIMENTS),
        }
    return {
        "weight": BRANCH_WEIGHT,
        "C": REGULARISATION_C,
        "scores": scores,
        "fused_temperature": fused_temperature,
        "fused_calibration": calibration,
    }
