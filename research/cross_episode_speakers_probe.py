"""Can the embedded diarizer's speakers be matched across the episodes of a show by their mean
voice embeddings (the optional part of the diarization issue)? Development episodes choose the
stopping distance; the final test's are then read once.

Each built episode (3-5 voices of one corpus; voices recur across episodes, as a show's host
does) is diarized from its true sentences' spans (`EmbeddedDiarizer`, `utterances`); each speaker it
finds becomes an item: the mean of its sentences' GE2E window embeddings, and the true voice that
covers most of its speech. Items of different episodes are merged by average linkage on cosine
distance until the nearest clusters lie `threshold` apart, never putting two speakers of one
episode together. Scored over pairs of items from different episodes: precision and recall of
"the same voice", and F1.

    .venv/bin/python research/cross_episode_speakers_probe.py --split dev --thresholds 0.2,0.3,0.4,0.5
    .venv/bin/python research/cross_episode_speakers_probe.py --split final --thresholds T   # once, T chosen on dev
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import numpy as np
import torch

from ser_pipeline.embedded_diarization import EmbeddedDiarizer
from ser_pipeline.training.data import shared_data_dir
from ser_pipeline.training.diarization_episodes import build_episodes, diarize


@dataclass(frozen=True)
class Item:
    episode: int
    label: str
    voice: str  # the true voice covering most of the label's speech
    embedding: np.ndarray


def items_of(diarizer: EmbeddedDiarizer, diarized) -> list[Item]:
    items = []
    for index, done in enumerate(diarized):
        episode = done.episode
        for label in sorted({t.speaker for t in done.turns}):
            spans = [(t.start_s, t.end_s) for t in done.turns if t.speaker == label]
            embeddings, _ = diarizer.embed(episode.samples, spans)
            if not len(embeddings):
                continue
            mean = embeddings.mean(0)
            cover: dict[str, float] = {}
            for start, end in spans:
                for truth in episode.turns:
                    overlap = min(end, truth.end_s) - max(start, truth.start_s)
                    if overlap > 0:
                        cover[truth.speaker] = cover.get(truth.speaker, 0.0) + overlap
            items.append(Item(index, label, max(cover, key=cover.get), mean / np.linalg.norm(mean)))
    return items


def match(items: list[Item], threshold: float) -> list[int]:
    """A show-level voice for each item: average-linkage merging under `threshold`, no two items of one episode together."""
    clusters = [[i] for i in range(len(items))]
    distance = 1 - np.stack([x.embedding for x in items]) @ np.stack([x.embedding for x in items]).T
    while True:
        best, pair = threshold, None
        for a in range(len(clusters)):
            for b in range(a + 1, len(clusters)):
                if {items[i].episode for i in clusters[a]} & {items[i].episode for i in clusters[b]}:
                    continue
                d = float(distance[np.ix_(clusters[a], clusters[b])].mean())
                if d < best:
                    best, pair = d, (a, b)
        if pair is None:
            break
        a, b = pair
        clusters[a] += clusters.pop(b)
    out = [0] * len(items)
    for k, members in enumerate(clusters):
        for i in members:
            out[i] = k
    return out


def pair_scores(items: list[Item], voices: list[int]) -> dict:
    tp = fp = fn = 0
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            if items[i].episode == items[j].episode:
                continue
            same, said = items[i].voice == items[j].voice, voices[i] == voices[j]
            tp, fp, fn = tp + (same and said), fp + (said and not same), fn + (same and not said)
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(f1, 3),
        "voices": len(set(voices)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="dev", choices=["dev", "final"])
    parser.add_argument("--thresholds", default="0.2,0.3,0.4,0.5")
    args = parser.parse_args()
    torch.set_num_threads(2)
    seeds = (1, 3) if args.split == "dev" else (2,)
    episodes = [e for seed in seeds for e in build_episodes(shared_data_dir(), args.split, seed=seed)]
    diarizer = EmbeddedDiarizer(torch.device("cpu"))
    items = items_of(diarizer, diarize(diarizer, episodes, sentences=True))
    summary = {"episodes": len(episodes), "items": len(items), "true_voices": len({x.voice for x in items})}
    for threshold in [float(t) for t in args.thresholds.split(",")]:
        summary[f"threshold {threshold}"] = pair_scores(items, match(items, threshold))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
