"""With speakers from the embedded diarizer, is the emotion head's speaker reading best alone, or
averaged with readings that do not depend on the diarizer being right? Development episodes only.

Each sentence's emotion probabilities four ways (`WhisperEmotionScorer.probabilities`, one Whisper
description per sentence): against its true speaker's sentences (a transcript with names),
against its embedded-diarizer speaker's, against the whole episode's (one voice for all), alone;
then the averages of the embedded reading with the others. 7-class UAR over the sentences, and
the 95% paired-bootstrap intervals over sentences of each reading minus the embedded one and minus
the one alone.

    .venv/bin/python research/speaker_reading_mix_probe.py --seeds 1,3,4 [--sentences] [--windows] [--shared]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
import torch

from ser_pipeline.audio import SAMPLE_RATE
from ser_pipeline.diarization import attribute
from ser_pipeline.embedded_diarization import EmbeddedDiarizer
from ser_pipeline.inference import Analyzer
from ser_pipeline.metrics import uar_difference_interval, unweighted_average_recall
from ser_pipeline.schema import EMOTIONS
from ser_pipeline.segmentation import window_segments
from ser_pipeline.training.data import shared_data_dir
from ser_pipeline.training.diarization_episodes import _covering_labels, build_episodes, diarize, shared_episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,3")
    parser.add_argument("--sentences", action="store_true", help="the true sentences (else voice activity)")
    parser.add_argument("--shared", action="store_true", help="the shared episodes (else built development ones)")
    parser.add_argument("--windows", action="store_true", help="3 s windows (the diarizer on voice activity)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = shared_data_dir()
    if args.shared:
        episodes = shared_episodes(data)
    else:
        episodes = [e for seed in args.seeds.split(",") for e in build_episodes(data, "dev", seed=int(seed))]
    scorer = Analyzer(device="cpu").models.waveform_emotion
    scorer.recording_context = False  # each reading pure; the averages are taken here
    diarized = diarize(EmbeddedDiarizer(torch.device("cpu")), episodes, args.sentences)
    if args.windows:  # the windows a transcript-less episode gets with --segmentation window
        diarized = [
            replace(d, segments=window_segments(len(d.episode.samples) / SAMPLE_RATE), turns=d.turns) for d in diarized
        ]
    truth, probs = [], {name: [] for name in ("transcript", "embedded", "episode", "none")}
    for done in diarized:
        episode, bare = done.episode, done.segments
        labels, scored = _covering_labels(bare, episode)
        descriptions = scorer.descriptions(episode.samples, bare)
        speakers = {
            "transcript": [s.speaker for s in attribute(bare, episode.turns, "transcript")],
            "embedded": [s.speaker for s in attribute(bare, done.turns, "embedded")],
            "episode": ["episode"] * len(bare),
            "none": [None] * len(bare),
        }
        for name, who in speakers.items():
            probs[name].append(scorer.probabilities(descriptions, who)[0][scored])
        truth += [labels[i] for i in scored]
    probs = {k: np.concatenate(v) for k, v in probs.items()}
    probs["embedded + none"] = (probs["embedded"] + probs["none"]) / 2
    probs["embedded + episode"] = (probs["embedded"] + probs["episode"]) / 2
    probs["embedded + episode + none"] = (probs["embedded"] + probs["episode"] + probs["none"]) / 3
    probs["episode + none"] = (probs["episode"] + probs["none"]) / 2
    probs["transcript + none"] = (probs["transcript"] + probs["none"]) / 2
    probs["transcript + episode + none"] = (probs["transcript"] + probs["episode"] + probs["none"]) / 3
    classes = [e for e in EMOTIONS if e in set(truth)]
    predicted = {k: [EMOTIONS[i] for i in v.argmax(1)] for k, v in probs.items()}
    out = {"sentences": len(truth)}
    for name, labels in predicted.items():
        row = {"uar": round(unweighted_average_recall(truth, labels, classes), 4)}
        for other in ("embedded", "none", "transcript"):
            if name != other and (name.startswith("transcript ") or other != "transcript"):
                row[f"minus_{other}"] = [
                    round(x, 4) for x in uar_difference_interval(truth, labels, predicted[other], classes)
                ]
        out[name] = row
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
