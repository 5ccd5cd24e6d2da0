"""How many voices? The embedded diarizer's fixed stopping distance against a count chosen by the
silhouette of the clustering, on development episodes only.

The diarizer merges clusters until they lie `threshold` (cosine distance) apart; on the final
test's unheard voices it stops too early (too few speakers: docs/evaluation.md). The silhouette
rule cuts the same average-linkage tree at every count from 2 to `max_speakers` and keeps the count
whose clusters are best separated relative to their own spread (mean silhouette, cosine), a
scale-free choice; where even the best is under `floor`, the threshold's count stands. Everything
after the count (small clusters merged, windows to their nearest centroid, turns smoothed) is the
diarizer's own.

Development episodes of three seeds (24 x 4 min, 3-5 voices of RAVDESS's development actors or
nEMO's development speakers), from voice activity and from the true sentences' spans; the GE2E
embeddings of each are computed once and every rule clusters the same ones. The laughter
detector's laughs are left in voice activity (the built episodes have none).

    .venv/bin/python research/diarizer_count_probe.py --seeds 1,3,4 --floors 0,0.05,0.1
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
import scipy.cluster.hierarchy
import torch

import ser_pipeline.embedded_diarization as embedded
from ser_pipeline.embedded_diarization import ClusteringSettings, EmbeddedDiarizer
from ser_pipeline.training.data import shared_data_dir
from ser_pipeline.training.diarization_episodes import build_episodes, diarize, score_diarizer
from ser_pipeline.voice_encoder import embed_windows, load_voice_encoder

THRESHOLD_CLUSTER = embedded.cluster


def silhouette_cluster(floor: float):
    """`embedded.cluster` with the count chosen by the silhouette (see the module's doc)."""
    from sklearn.metrics import silhouette_score

    def cluster(embeddings: np.ndarray, settings: ClusteringSettings) -> np.ndarray:
        n = len(embeddings)
        chosen = np.linspace(0, n - 1, min(n, settings.max_windows)).round().astype(int)
        mean = embeddings[chosen].mean(0)
        if n < 3 or 1 - float(mean @ mean) < settings.one_voice_spread:
            return np.zeros(n, int)
        _, _, axes = np.linalg.svd(embeddings[chosen] - mean, full_matrices=False)
        reduced = (embeddings[chosen] - mean) @ axes[: settings.dims].T
        reduced /= np.linalg.norm(reduced, axis=1, keepdims=True).clip(1e-8)
        tree = scipy.cluster.hierarchy.linkage(reduced, method="average", metric="cosine")
        best, best_k = -1.0, None
        for k in range(2, min(settings.max_speakers, len(chosen) - 1) + 1):
            labels = scipy.cluster.hierarchy.fcluster(tree, k, criterion="maxclust")
            if len(np.unique(labels)) < 2:
                continue
            score = silhouette_score(reduced, labels, metric="cosine")
            if score > best:
                best, best_k = score, len(np.unique(labels))
        if best_k is None or best < floor:
            return THRESHOLD_CLUSTER(embeddings, settings)
        # the tree's cut at best_k clusters is what the threshold would give at the matching distance
        heights = tree[:, 2]  # n - k merges lie at or under the cut that leaves k clusters
        distance = float((heights[-best_k] + heights[-best_k + 1]) / 2)
        return THRESHOLD_CLUSTER(embeddings, replace(settings, threshold=distance))

    return cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,3,4")
    parser.add_argument("--floors", default="0,0.05,0.1")
    parser.add_argument("--thresholds", default="0.8,0.9,1.0")
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = shared_data_dir()
    episodes = [e for seed in args.seeds.split(",") for e in build_episodes(data, "dev", seed=int(seed))]
    encoder, cache = load_voice_encoder(torch.device("cpu")), {}

    def cached(pieces):
        key = (len(pieces), pieces[0][:400].tobytes(), pieces[-1][-400:].tobytes()) if pieces else None
        if key not in cache:
            cache[key] = embed_windows(encoder, pieces)
        return cache[key]

    rules = {f"threshold {t}": (THRESHOLD_CLUSTER, float(t)) for t in args.thresholds.split(",")}
    rules |= {f"silhouette, floor {f}": (silhouette_cluster(float(f)), None) for f in args.floors.split(",")}
    results = {}
    for sentences in (False, True):
        for name, (rule, threshold) in rules.items():
            settings = ClusteringSettings()
            if threshold is not None:
                settings = replace(settings, threshold=threshold, utterance_threshold=threshold)
            embedded.cluster = rule
            try:
                diarizer = EmbeddedDiarizer(torch.device("cpu"), settings, embedder=cached)
                summary = score_diarizer(diarize(diarizer, episodes, sentences))
            finally:
                embedded.cluster = THRESHOLD_CLUSTER
            key = f"{'sentences' if sentences else 'voice activity'}, {name}"
            results[key] = {k: v for k, v in summary.items() if k != "episodes"}
            print(key, json.dumps(results[key]), flush=True)


if __name__ == "__main__":
    main()
