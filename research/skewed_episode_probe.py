"""Does reading unnamed utterances against their episode hide how tense or warm a whole episode
is? Development episodes only.

Reading an utterance against the whole episode removes what all its utterances share, so an
episode that is mostly angry could look less tense next to a mostly happy one. Each built
development episode's true sentences (described once) are split into two recordings: a tense one
(its angry, fearful, sad and disgusted sentences and a quarter of the rest) and a warm one (its
happy and neutral sentences and a quarter of the rest); each is scored as the pipeline scores an
episode without speakers, alone and alone + against the recording (`WhisperEmotionScorer`).
Reported: 7-class UAR within the skewed recordings, the mean valence and arousal of each (the
lexicon's coordinates of the emotion probabilities), and in how many episodes the warm recording
reads warmer (higher valence) and calmer (lower arousal) than the tense one.

    .venv/bin/python research/skewed_episode_probe.py --seeds 1,3,4
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from ser_pipeline.inference import Analyzer
from ser_pipeline.metrics import unweighted_average_recall
from ser_pipeline.schema import EMOTIONS
from ser_pipeline.segmentation import Segment
from ser_pipeline.training.data import shared_data_dir
from ser_pipeline.training.diarization_episodes import build_episodes

TENSE = {"angry", "fear", "sad", "disgust"}
WARM = {"happy", "neutral"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,3,4")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    scorer = Analyzer(device="cpu").models.waveform_emotion
    episodes = [e for s in args.seeds.split(",") for e in build_episodes(shared_data_dir(), "dev", seed=int(s))]
    truth: dict[str, list[str]] = {"tense": [], "warm": []}
    predicted = {(kind, reading): [] for kind in truth for reading in ("alone", "episode")}
    means = {key: [] for key in predicted}
    for episode in episodes:
        segments = [Segment(i, "sentence", t.start_s, t.end_s) for i, t in enumerate(episode.turns)]
        descriptions = scorer.descriptions(episode.samples, segments)
        labels = np.array(episode.emotions)
        others = rng.random(len(labels)) < 0.25
        rows = {
            "tense": np.flatnonzero(np.isin(labels, list(TENSE)) | (~np.isin(labels, list(TENSE)) & others)),
            "warm": np.flatnonzero(np.isin(labels, list(WARM)) | (~np.isin(labels, list(WARM)) & others)),
        }
        for kind, chosen in rows.items():
            truth[kind] += list(labels[chosen])
            for reading in ("alone", "episode"):
                scorer.recording_context = reading == "episode"
                emotion, _ = scorer.probabilities(descriptions[chosen], [None] * len(chosen))
                predicted[(kind, reading)] += [EMOTIONS[i] for i in emotion.argmax(1)]
                means[(kind, reading)].append(scorer.dims(emotion).mean(0))
    scorer.recording_context = True
    out = {"episodes": len(episodes)}
    for reading in ("alone", "episode"):
        tense, warm = np.stack(means[("tense", reading)]), np.stack(means[("warm", reading)])
        out[reading] = {
            "uar_tense_recordings": round(
                unweighted_average_recall(truth["tense"], predicted[("tense", reading)], EMOTIONS), 4
            ),
            "uar_warm_recordings": round(
                unweighted_average_recall(truth["warm"], predicted[("warm", reading)], EMOTIONS), 4
            ),
            "valence_tense_warm": [round(float(tense[:, 0].mean()), 3), round(float(warm[:, 0].mean()), 3)],
            "arousal_tense_warm": [round(float(tense[:, 1].mean()), 3), round(float(warm[:, 1].mean()), 3)],
            "warm_reads_warmer": int((warm[:, 0] > tense[:, 0]).sum()),
            "warm_reads_calmer": int((warm[:, 1] < tense[:, 1]).sum()),
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
