"""The GE2E voice encoder in bfloat16 on a CPU with bfloat16 dot products: what it saves and
whether the embedded diarizer's answers hold, on development episodes only.

The LSTM is most of the diarizer's cost (about 6.5 of 8 s an hour of speech on 2 cores). Under
bfloat16 autocast (`embed_windows(fast=True)`, the mel bands still in float32) it runs about 1.7x
as fast, but its recurrent state is then rounded at every step. Development episodes of three seeds (24 x 4 min, 3-5 voices of RAVDESS's development actors
or nEMO's development speakers) are diarized from voice activity and from the true sentences'
spans with the encoder in float32 and in bfloat16; reported: each one's DER and exact counts, the
paired difference of DER over episodes (95% bootstrap), the windows' cosine between the two
embeddings, and the encoder's seconds.

    .venv/bin/python research/ge2e_precision_probe.py --seeds 1,3,4
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from ser_pipeline.embedded_diarization import ClusteringSettings, EmbeddedDiarizer
from ser_pipeline.training.data import shared_data_dir
from ser_pipeline.training.diarization_episodes import build_episodes, diarize, score_diarizer
from ser_pipeline.voice_encoder import embed_windows, load_voice_encoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,3,4")
    args = parser.parse_args()
    torch.set_num_threads(2)
    episodes = [e for seed in args.seeds.split(",") for e in build_episodes(shared_data_dir(), "dev", seed=int(seed))]
    encoder = load_voice_encoder(torch.device("cpu"))
    seconds = {"float32": 0.0, "bfloat16": 0.0}
    embeddings: dict[str, list[np.ndarray]] = {"float32": [], "bfloat16": []}

    def embedder(precision: str):
        def embed(pieces: list[np.ndarray]) -> np.ndarray:
            began = time.perf_counter()
            out = embed_windows(encoder, pieces, fast=precision == "bfloat16")
            seconds[precision] += time.perf_counter() - began
            embeddings[precision].append(out)
            return out

        return embed

    results = {}
    for sentences in (False, True):
        ders = {}
        for precision in ("float32", "bfloat16"):
            diarizer = EmbeddedDiarizer(torch.device("cpu"), ClusteringSettings(), embedder=embedder(precision))
            summary = score_diarizer(diarize(diarizer, episodes, sentences))
            ders[precision] = np.array([row["der"] for row in summary["episodes"]])
            key = f"{'sentences' if sentences else 'voice activity'}, {precision}"
            results[key] = {k: v for k, v in summary.items() if k != "episodes"}
            print(key, json.dumps(results[key]), flush=True)
        difference = ders["bfloat16"] - ders["float32"]
        rng = np.random.default_rng(0)
        draws = [difference[rng.integers(0, len(difference), len(difference))].mean() for _ in range(2000)]
        low, high = np.percentile(draws, [2.5, 97.5])
        print(f"  DER bfloat16 - float32, paired over {len(difference)} episodes: {difference.mean():+.4f} "
              f"({low:+.4f} to {high:+.4f}); episodes changed {int((difference != 0).sum())}")  # fmt: skip
    pairs = [(a * b).sum(1) for a, b in zip(embeddings["float32"], embeddings["bfloat16"], strict=True)]
    cosines = np.concatenate(pairs)
    print(f"windows' cosine float32 vs bfloat16: mean {cosines.mean():.4f}, 1st percentile "
          f"{np.percentile(cosines, 1):.4f}, min {cosines.min():.4f} ({len(cosines)} windows)")  # fmt: skip
    print("encoder seconds:", {k: round(v, 1) for k, v in seconds.items()})


if __name__ == "__main__":
    main()
