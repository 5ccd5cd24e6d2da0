"""Recipe: the speaker branch of the emotion model, a linear classifier of utterance statistics
and the network's emotion log-probabilities z-scored within their speaker
(`architectures.SpeakerBranch`), and a linear regressor of valence, arousal and dominance on the
same input, fused with the network's outputs.

RAVDESS only: TESS has two speakers, too few to learn how voices depart from their own
baseline. Each actor's clips give that actor's baseline. Trained with scikit-learn's logistic
regression (balanced classes, C = 0.1) and ridge regression (alpha = 100, against the emotion
recipe's derived targets), and copied into a torch module for inference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ser_pipeline.architectures import (
    SpeakerBranch,
    SpeakerBranchConfig,
    branch_features,
    fuse_dims,
    fuse_emotions,
    speaker_zscore,
)
from ser_pipeline.features import FrontEndConfig, LogMel, utterance_statistics, voiced_span
from ser_pipeline.metrics import accuracy, confusion, unweighted_average_recall
from ser_pipeline.schema import DIMENSIONS, EMOTION_TO_SENTIMENT, EMOTIONS, SENTIMENT_OF_EMOTION, SENTIMENTS
from ser_pipeline.training.data import Clip, ravdess_clips, ravdess_voices, read_clip
from ser_pipeline.training.emotion import EmotionRecipe, derived_dims, dims_scores, in_condition, noise_bed

BRANCH_WEIGHT = 0.5  # the branch's share of the fused log-probabilities; fixed, not tuned
REGULARISATION_C = 0.1
DIMS_RIDGE_ALPHA = 100.0  # of 10, 100, 1000 and 3000 on the cross-validation's folds, the best


NOISY_ROOMS = 3  # noisy copies of the training clips, each speaker in a room of its own in each


def clip_statistics(clips: list[Clip], seed: int = 0, rooms: int = NOISY_ROOMS) -> tuple[torch.Tensor, torch.Tensor]:
    """`utterance_statistics` of each clip's voiced part, as the pipeline computes it per segment:
    (clips, features) of the clean clips, and (rooms, clips, features) of the clips in background
    noise, each speaker in one room per copy (one `noise_bed`: a level and colour from the
    emotion recipe's range), as an episode puts each of its speakers in one room."""
    front_end = LogMel(FrontEndConfig())
    rng = np.random.default_rng(seed)
    speakers = sorted({c.speaker for c in clips})
    beds = [{speaker: noise_bed(rng) for speaker in speakers} for _ in range(rooms)]
    clean, noisy = [], [[] for _ in range(rooms)]
    for clip in clips:
        samples = read_clip(clip.path)
        clean.append(voiced_statistics(samples, front_end))
        for room, statistics in zip(beds, noisy, strict=True):
            statistics.append(voiced_statistics(in_condition(samples, (1.0, room[clip.speaker]), rng), front_end))
    return torch.stack(clean), torch.stack([torch.stack(statistics) for statistics in noisy])


def voiced_statistics(samples: np.ndarray, front_end: LogMel) -> torch.Tensor:
    """`utterance_statistics` of a clip's voiced part, as the pipeline computes them per segment."""
    logmel = front_end.episode(samples, torch.device("cpu"))
    return utterance_statistics(logmel[slice(*voiced_span(logmel))], front_end.config.n_mfcc)


def dims_targets(data: Path, clips: list[Clip]) -> np.ndarray:
    """The emotion recipe's derived valence/arousal/dominance targets of RAVDESS clips (lexicon
    coordinates, intensity and the acoustic evidence of arousal z-scored within the speaker)."""
    samples = [read_clip(c.path) for c in clips]
    return derived_dims(data / "lexicon" / "emotion_vad.csv", clips, samples, EmotionRecipe.acoustic_arousal_weight)


def branch_config(network_inputs: bool, n_dims: int = len(DIMENSIONS)) -> SpeakerBranchConfig:
    """The branch's shape: utterance statistics, and the network's emotion log-probabilities
    after them when it reads those."""
    statistics = SpeakerBranchConfig().n_statistics
    extra = len(EMOTIONS) if network_inputs else 0
    return SpeakerBranchConfig(n_features=statistics + extra, n_dims=n_dims, network_inputs=extra)


def network_probabilities(document: dict, clips: list[Clip]) -> np.ndarray:
    """The cross-validation's held-out emotion probabilities of `clips` (each from the fold
    network that never heard its speaker, with the document's emotion temperature): what the
    branch learns to read the network's outputs from, out of sample as they are at inference."""
    from ser_pipeline.training.crossval import softmax

    temperature = document["temperatures"]["emotion"]
    by_file = {
        clip["file"]: logits
        for fold in document["folds"]
        for clip, logits in zip(fold["clips"], fold["predictions"]["emotion"], strict=True)
    }
    missing = [c.path.name for c in clips if c.path.name not in by_file]
    if missing:
        raise ValueError(f"{len(missing)} clips have no cross-validated network outputs (e.g. {missing[0]})")
    return softmax(np.asarray([by_file[c.path.name] for c in clips], np.float32), temperature).astype(np.float32)


def fit_branch(
    zscored: torch.Tensor, labels: list[str], dims: np.ndarray | None = None, network_inputs: int = 0
) -> SpeakerBranch:
    """The emotion classifier, and with `dims` (utterances, 3) targets the dims regressor; the
    last `network_inputs` columns of `zscored` are network log-probabilities."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(zscored.numpy())
    standardised = scaler.transform(zscored.numpy())
    model = LogisticRegression(C=REGULARISATION_C, max_iter=3000, class_weight="balanced")
    model.fit(standardised, [EMOTIONS.index(label) for label in labels])
    if list(model.classes_) != list(range(len(EMOTIONS))):
        raise ValueError("the training clips do not hold every emotion")
    config = SpeakerBranchConfig(
        n_features=zscored.shape[1], n_dims=0 if dims is None else len(DIMENSIONS), network_inputs=network_inputs
    )
    branch = SpeakerBranch(config)
    with torch.no_grad():
        branch.mean.copy_(torch.from_numpy(scaler.mean_))
        branch.scale.copy_(torch.from_numpy(scaler.scale_))
        branch.linear.weight.copy_(torch.from_numpy(model.coef_))
        branch.linear.bias.copy_(torch.from_numpy(model.intercept_))
        if dims is not None:
            ridge = Ridge(alpha=DIMS_RIDGE_ALPHA).fit(standardised, dims)
            branch.dims.weight.copy_(torch.from_numpy(ridge.coef_))
            branch.dims.bias.copy_(torch.from_numpy(ridge.intercept_))
    return branch.eval()


def zscored_inputs(
    statistics: torch.Tensor,
    network: np.ndarray | None,
    speakers: list[str],
    baseline: torch.Tensor | None = None,
) -> torch.Tensor:
    """`branch_features` of clips (with the network's probabilities when given), z-scored
    within each speaker, as the pipeline prepares them."""
    config = branch_config(network is not None)
    features = branch_features(statistics.numpy(), network, config)
    return speaker_zscore(torch.from_numpy(features), speakers, min_segments=1, baseline=baseline)[0]


def fit_on_rooms(
    clean: torch.Tensor,
    noisy: torch.Tensor,
    clips: list[Clip],
    dims: np.ndarray | None = None,
    network: np.ndarray | None = None,
) -> SpeakerBranch:
    """The branch fitted on every clip clean and in each of its speaker's rooms (`clip_statistics`),
    each condition z-scored within the speaker. The network's probabilities (`network`, of the
    clean clips) join every condition: the network is trained to hear through such noise."""
    speakers = [c.speaker for c in clips]
    conditions = [clean, *noisy]
    zscored = [zscored_inputs(statistics, network, speakers) for statistics in conditions]
    return fit_branch(
        torch.cat(zscored),
        [c.label for c in clips] * len(conditions),
        None if dims is None else np.tile(dims, (len(conditions), 1)),
        branch_config(network is not None).network_inputs,
    )


def train_branch(
    data: Path, held_out_actors: tuple[int, ...], document: dict | None
) -> tuple[SpeakerBranch, list[Clip]]:
    """The branch (emotions and dims) trained on every RAVDESS actor but the held-out ones, on
    the utterance statistics and, with a cross-validation `document`, the network's
    cross-validated outputs in it."""
    held_out = ravdess_voices(held_out_actors)
    clips = [c for c in ravdess_clips(data) if c.speaker not in held_out]
    network = None if document is None else network_probabilities(document, clips)
    return fit_on_rooms(*clip_statistics(clips), clips, dims_targets(data, clips), network), clips


def fusion_calibration(
    data: Path, held_out_actors: tuple[int, ...], network, branch: SpeakerBranch, weight: float
) -> tuple[dict[str, float], dict, dict]:
    """Temperatures (emotion, sentiment, fused emotion) and the dims calibrations ("network" and
    "fused"), fitted on the held-out actors' clips, each actor's clips the context of the others
    as in the pipeline; and the UARs there. For a network without a cross-validation (`train
    emotion-cv`) to fit them on: the held-out actors are out of sample for the network and the
    branch alike. Temperatures change no winning class."""
    from ser_pipeline.training.crossval import calibrate, calibrate_head, fit_dims_affine, softmax
    from ser_pipeline.training.emotion import evaluate, predict

    held_out = ravdess_voices(held_out_actors)
    clips = [c for c in ravdess_clips(data) if c.speaker in held_out]
    front_end = LogMel(FrontEndConfig())
    samples = [read_clip(c.path) for c in clips]
    logmels = [front_end.episode(x, torch.device("cpu")) for x in samples]
    speakers = [c.speaker for c in clips]
    outputs = predict(network, logmels, front_end.config.n_mfcc, speakers)
    temperatures = calibrate(clips, outputs)[0]
    probs = torch.from_numpy(softmax(outputs["emotion"], temperatures["emotion"]).astype(np.float32))
    statistics = torch.stack(
        [utterance_statistics(m[slice(*voiced_span(m))], front_end.config.n_mfcc) for m in logmels]
    )
    zscored = zscored_inputs(statistics, probs.numpy() if branch.config.network_inputs else None, speakers)
    with torch.no_grad():
        fused = fuse_emotions(probs, branch(zscored), weight).numpy()
        branch_dims = branch.dimensions(zscored).numpy()
    truth = [EMOTIONS.index(c.label) for c in clips]
    temperatures["fused_emotion"] = calibrate_head(np.log(fused + 1e-12), truth)[0]
    lexicon = data / "lexicon" / "emotion_vad.csv"
    targets = derived_dims(lexicon, clips, samples, EmotionRecipe.acoustic_arousal_weight)  # as `dims_targets`
    calibration = {
        "network": fit_dims_affine(outputs["dims"], targets),
        "fused": fit_dims_affine(fuse_dims(outputs["dims"], branch_dims, weight), targets),
    }
    labels = [c.label for c in clips]
    sentiment_truth = [EMOTION_TO_SENTIMENT[t] for t in labels]
    network_scores = evaluate(outputs, clips, targets)
    scores = {
        "clips": len(clips),
        "network_emotion_uar": network_scores["emotion_uar"],
        "network_sentiment_uar": network_scores["sentiment_uar"],
        "fused_emotion_uar": unweighted_average_recall(labels, [EMOTIONS[i] for i in fused.argmax(1)], EMOTIONS),
        "fused_sentiment_uar": unweighted_average_recall(
            sentiment_truth, [SENTIMENTS[i] for i in (fused @ SENTIMENT_OF_EMOTION).argmax(1)], SENTIMENTS
        ),
    }
    return temperatures, calibration, scores


def _neutral_heavy_baseline(clips: list[Clip], rng: np.random.Generator) -> torch.Tensor:
    """Which clips make each speaker's baseline when it is half neutral: their neutral clips and
    a quarter of the others, as a podcast speaker talks mostly calmly. A check that the branch
    does not rely on RAVDESS giving every actor every emotion in equal measure."""
    baseline = torch.tensor([c.label == "neutral" for c in clips])
    for speaker in sorted({c.speaker for c in clips}):
        others = [i for i, c in enumerate(clips) if c.speaker == speaker and c.label != "neutral"]
        baseline[rng.choice(others, len(others) // 4, replace=False)] = True
    return baseline


def cross_validate_branch(
    document: dict, data: Path, network_inputs: bool = True, weight: float = BRANCH_WEIGHT
) -> dict:
    """The branch and its fusion with the network (the branch's share `weight`), on the
    cross-validation's folds: each fold's branch is trained without the fold's actors (with
    `network_inputs`, reading the other folds' held-out network outputs) and fused with that
    fold's network outputs (clean clips: the network's held-out outputs are of clean clips).
    The branch alone is also scored with the held-out clips' statistics in their speaker's noise."""
    from ser_pipeline.training.crossval import calibrate_head

    scored = {clip["file"] for fold in document["folds"] for clip in fold["clips"]}
    every = [c for c in ravdess_clips(data) if c.path.name in scored]  # the clips with network outputs
    row_of = {c.path.name: i for i, c in enumerate(every)}
    speakers = [c.speaker for c in every]
    clean, noisy = clip_statistics(every)
    network_all = network_probabilities(document, every)
    read = network_all if network_inputs else None
    conditions = {
        "": zscored_inputs(clean, read, speakers),
        " (speakers in noise)": zscored_inputs(noisy[0], read, speakers),  # one room each
        " (neutral-heavy baseline)": zscored_inputs(
            clean, read, speakers, _neutral_heavy_baseline(every, np.random.default_rng(0))
        ),
    }
    targets = dims_targets(data, every)
    truth, outputs, dims, held_rows = [], {}, {}, []
    for fold in document["folds"]:
        held = ravdess_voices(fold["held_out"])
        train_rows = [i for i, s in enumerate(speakers) if s not in held]
        branch = fit_on_rooms(
            clean[train_rows],
            noisy[:, train_rows],
            [every[i] for i in train_rows],
            targets[train_rows],
            network_all[train_rows] if network_inputs else None,
        )
        rows = [row_of[c["file"]] for c in fold["clips"]]
        network = torch.from_numpy(network_all[rows])  # the fold network's, looked up once above
        network_dims = np.asarray(fold["predictions"]["dims"], np.float32)
        truth += [c["label"] for c in fold["clips"]]
        held_rows += rows
        outputs.setdefault("network", []).append(network)
        dims.setdefault("network", []).append(network_dims)
        with torch.no_grad():
            for suffix, zscored in conditions.items():
                logits = branch(zscored[rows])
                outputs.setdefault("branch" + suffix, []).append(torch.softmax(logits, -1))
                if suffix != " (speakers in noise)":
                    outputs.setdefault("fused" + suffix, []).append(fuse_emotions(network, logits, weight))
                branch_dims = branch.dimensions(zscored[rows]).numpy()
                dims.setdefault("branch" + suffix, []).append(branch_dims)
                dims.setdefault("fused" + suffix, []).append(fuse_dims(network_dims, branch_dims, weight))
    fused = torch.cat(outputs["fused"]).numpy()
    fused_temperature, calibration = calibrate_head(np.log(fused + 1e-12), [EMOTIONS.index(t) for t in truth])
    sentiment_truth = [EMOTION_TO_SENTIMENT[t] for t in truth]
    scores = {}
    for name, parts in outputs.items():
        probs = torch.cat(parts).numpy()
        predicted = [EMOTIONS[i] for i in probs.argmax(1)]
        sentiment_predicted = [SENTIMENTS[i] for i in (probs @ SENTIMENT_OF_EMOTION).argmax(1)]
        scores[name] = {
            "emotion_uar": unweighted_average_recall(truth, predicted, EMOTIONS),
            "emotion_accuracy": accuracy(truth, predicted),
            "sentiment_uar_from_emotions": unweighted_average_recall(sentiment_truth, sentiment_predicted, SENTIMENTS),
        }
    fused_predicted = [EMOTIONS[i] for i in fused.argmax(1)]
    return {
        "weight": weight,
        "network_inputs": network_inputs,
        "C": REGULARISATION_C,
        "scores": scores,
        "fused_confusion": confusion(truth, fused_predicted, EMOTIONS).tolist(),
        "fused_temperature": fused_temperature,
        "fused_calibration": calibration,
        "dims": _dims_calibration(
            {name: np.concatenate(parts) for name, parts in dims.items()},
            targets[held_rows],
            [every[i] for i in held_rows],
            np.concatenate([np.full(len(fold["clips"]), k) for k, fold in enumerate(document["folds"])]),
        ),
    }


def _dims_calibration(dims: dict[str, np.ndarray], targets: np.ndarray, clips: list[Clip], folds: np.ndarray) -> dict:
    """The affine calibrations of the network's dims and of the fused dims (fitted on all
    held-out outputs, for the registry), and CCC and orderings of every variant on the held-out
    clips, calibrated variants held out too: each fold mapped by the affine of the other folds.
    The branch in noise and on neutral-heavy baselines gets the clean fused calibration."""
    from ser_pipeline.training.crossval import fit_dims_affine, nested_dims_calibration

    variants = {name: dims_scores(values, targets, clips) for name, values in dims.items()}
    variants["network, calibrated"] = dims_scores(
        nested_dims_calibration(dims["network"], targets, folds), targets, clips
    )
    for suffix in ("", " (speakers in noise)", " (neutral-heavy baseline)"):
        calibrated = nested_dims_calibration(dims["fused" + suffix], targets, folds, fit_on=dims["fused"])
        variants["fused, calibrated" + suffix] = dims_scores(calibrated, targets, clips)
    return {
        "ridge_alpha": DIMS_RIDGE_ALPHA,
        "calibration": {name: fit_dims_affine(dims[name], targets) for name in ("network", "fused")},
        "scores": variants,
    }


def branch_card(
    held_out_actors: tuple[int, ...],
    clips: int,
    command: str,
    network_inputs: bool,
    weight: float,
    network: str,
    measured: dict | None = None,
) -> str:
    actors = ", ".join(f"{a:02d}" for a in held_out_actors)
    what = (
        " and of the emotion network's 7 log-probabilities\nfor it (with the network's temperature), all"
        if network_inputs
        else ", the statistics alone (not the\nnetwork's outputs),"
    )
    held_out_scores = (
        f"""On the held-out actors ({measured["clips"]} clips, each actor's clips the context of the others,
as the pipeline reads a named speaker): 7-class UAR {measured["network_emotion_uar"]:.3f} from {network} alone,
{measured["fused_emotion_uar"]:.3f} fused with this branch; sentiment UAR {measured["network_sentiment_uar"]:.3f}
(head) and {measured["fused_sentiment_uar"]:.3f} (summed from the fused emotions). The temperatures
and dims calibrations in {network}'s registry entry were fitted on the same clips (they change no
winning class; the dims' scale and shift are fitted there, so dims CCC on these voices is not
held out).

"""
        if measured
        else ""
    )
    caveat = (
        "`docs/emotion-cv.md` also\nmeasures the branch with baselines that are half neutral, the closer case."
        if network_inputs
        else "`docs/emotion-cv-v2/emotion-cv.md` also\nmeasures this recipe with baselines that are half neutral, the closer case."
    )
    reads = (
        " and how\nmuch more of each emotion the network hears in it than in the speaker's other utterances"
        if network_inputs
        else ""
    )
    source = (
        """- The network's log-probabilities of the training clips are its cross-validated held-out
  outputs (`docs/emotion-cv.json`: each clip scored by the fold network that never heard its
  actor), so the branch learns from outputs that are out of sample, as they are in the pipeline;
  the noisy copies take the clean clips' outputs (the network is trained to hear through such
  noise). Leave-4-actors-out, fused with ser-crnn-v1: UAR 0.676 with statistics alone (v2),
  0.699 with the network's log-probabilities added (v3); see `docs/emotion-cv.md`."""
        if network_inputs
        else """- Statistics alone: the network it joins (ser-crnn-v2) reads its speaker's other utterances
  itself. Leave-4-actors-out with that recipe (one network per fold, `docs/evaluation.md`,
  "Speaker normalisation after the network"), fused at share 0.3: UAR 0.693 on clean clips and
  0.664 in the episodes' white noise (trained on one noisy copy, as v4 was: 0.694 / 0.654;
  ser-crnn-v1 with the v3 branch: 0.699 / 0.636)."""
    )
    return f"""
The speaker branch of the embedded emotion model ({network}): a linear classifier (7 emotions) and a
linear regressor (valence, arousal, dominance) of an utterance's statistics (per log-mel band: mean,
deviation, 10th and 90th percentile, spread of frame-to-frame change; MFCC mean and deviation;
energy mean, deviation and range: 363 values){what} z-scored within the utterance's speaker. It reads
how an utterance departs from that speaker's usual voice (louder, higher, more varied){reads}.

In the pipeline its log-probabilities are averaged with the emotion network's (weight
{weight}, the branch's share) for segments whose speaker (from the transcript or
`--diarization`) has at least 8 segments in the episode; their statistics are z-scored over
those segments. Its dims are averaged with the network's (same weight) for the same segments.
Other segments keep the network's outputs. A fused temperature and a fused dims calibration in
the network's registry entry calibrate the result.

## Data and split
- Training: RAVDESS speech, {clips} clips of every actor except the held-out ones ({actors}:
  the voices of `../shared/data/episodes`); each actor's clips give that actor's baseline.
  TESS is left out (two speakers teach nothing about departures from a baseline).
- Every clip {1 + NOISY_ROOMS} times: clean, and in {NOISY_ROOMS} rooms, each speaker's clips in one background noise
  per room (one colour, white, pink or brown, and one level, RMS 2e-4 to 8e-3, the emotion
  recipe's range, as an episode puts each speaker in one room); each condition z-scored within
  the speaker. (Until 2026-11-23 one noisy copy, its colour drawn per clip.) Trained on clean clips alone the branch
  fell from UAR 0.64 (clean) to 0.35 on the same held-out speakers in noise; with the noisy
  copies 0.60 / 0.51 (leave-4-actors-out, branch alone, measured while developing the recipe).
{source}
- scikit-learn logistic regression, balanced class weights, C = {REGULARISATION_C}, on standardised
  z-scores; ridge regression (alpha {DIMS_RIDGE_ALPHA:g}) of the emotion recipe's derived dims targets
  (lexicon coordinates per class, RAVDESS intensity and the clip's acoustic evidence of arousal:
  see the emotion network's card) on the same input; copied into `SpeakerBranch` (torch) for inference.

## Caveat
RAVDESS gives every actor every emotion in equal measure, so a speaker's baseline there is an
average over all emotions. A podcast speaker talks mostly calmly: {caveat}

## Licence
Derived from RAVDESS (CC BY-NC-SA 4.0): non-commercial use.

## Measured
{held_out_scores}Leave-4-actors-out cross-validation, alone and fused: `docs/emotion-cv.md` (v3, with ser-crnn-v1),
`docs/emotion-cv-v2/emotion-cv.md` and `docs/evaluation.md` (with ser-crnn-v2's recipe).

## Reproduce
`{command}`
"""
