"""GE2E (the embedded diarizer's voice encoder) as an emotion front end, beside the Whisper
descriptions of `ser-whisper-head-v1`, on development speakers only (nEMO's final-test speakers
are never read). The issue (#27) named it as a candidate: its 256-d utterance embedding,
z-scored within each speaker, with a plain logistic regression.

1. Every clip of RAVDESS, TESS and nEMO's development speakers: its Whisper description
   (`whisper_head_probe.py`'s cache) and its GE2E utterance embedding (the mean of its 1.6 s
   windows every 0.8 s, L2-normalised, as Resemblyzer's `embed_utterance`; cached in --cache).
2. Logistic regressions on GE2E alone, Whisper alone and both side by side, alone and against
   the speaker, scored as `whisper_head_probe.py` scores: the held-out RAVDESS actors, nEMO's
   development speakers left out one at a time, and both cross-corpus directions; 95% bootstrap
   intervals over test speakers for "both - Whisper".

Usage: .venv/bin/python research/ge2e_emotion_probe.py [--whisper-cache F] [--cache F] [--c-ge2e 0.1,1]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from whisper_head_probe import describe_corpora, fit_predict, uar, zscored


def embed_corpora(cache: Path) -> np.ndarray:
    import torch

    from ser_pipeline.clip_evaluation import in_split
    from ser_pipeline.embedded_diarization import speech_windows
    from ser_pipeline.training.data import nemo_clips, ravdess_clips, read_clip, shared_data_dir, tess_clips
    from ser_pipeline.voice_encoder import embed_windows, load_voice_encoder

    if cache.is_file():
        return np.load(cache)["embeddings"]
    data = shared_data_dir()
    clips = [c for c in ravdess_clips(data) + tess_clips(data) + nemo_clips(data) if in_split(c, "dev")]
    encoder = load_voice_encoder(torch.device("cpu"))
    rows = []
    for first in range(0, len(clips), 500):
        audio = [read_clip(c.path) for c in clips[first : first + 500]]
        for samples in audio:
            pieces, _ = speech_windows(samples, [(0.0, len(samples) / 16_000)], 0.8)
            mean = embed_windows(encoder, pieces).mean(0)
            rows.append(mean / np.linalg.norm(mean))
        print(f"  embedded {min(first + 500, len(clips))}/{len(clips)} clips", flush=True)
    embeddings = np.stack(rows).astype(np.float32)
    np.savez(cache, embeddings=embeddings)
    return embeddings


def speaker_bootstrap(truth, first, second, groups, rounds: int = 1000) -> tuple[float, float]:
    """95% interval of UAR(first) - UAR(second), test speakers drawn with replacement."""
    rng = np.random.default_rng(0)
    names = np.unique(groups)
    rows = {name: np.flatnonzero(groups == name) for name in names}
    differences = []
    for _ in range(rounds):
        picked = np.concatenate([rows[name] for name in rng.choice(names, len(names))])
        differences.append(uar(truth[picked], first[picked]) - uar(truth[picked], second[picked]))
    return float(np.percentile(differences, 2.5)), float(np.percentile(differences, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--whisper-cache", type=Path, default=Path("whisper-descriptions-dev.npz"))
    parser.add_argument("--cache", type=Path, default=Path("ge2e-embeddings-dev.npz"))
    parser.add_argument("--c-ge2e", default="0.1,1", help="C values for GE2E alone")
    args = parser.parse_args()
    described = describe_corpora(args.whisper_cache)
    whisper, labels, speakers, corpora = (described[k] for k in ("descriptions", "labels", "speakers", "corpora"))
    ge2e = embed_corpora(args.cache).astype(np.float64)
    assert len(ge2e) == len(whisper)
    held = np.isin(speakers, [f"ravdess-{a:02d}" for a in (1, 2, 5, 8, 11)])
    nemo = corpora == "nemo"
    target = held & (labels != "disgust")  # nEMO has no disgust
    tests = {
        "held-out RAVDESS": (~held, held),
        "RAVDESS+TESS -> nEMO dev": (~nemo, nemo),
        "nEMO dev -> held-out RAVDESS (6 classes)": (nemo, target),
    }
    features = {f"GE2E C={c}": (ge2e, float(c)) for c in args.c_ge2e.split(",")}
    features["Whisper C=0.01"] = (whisper.astype(np.float64), 0.01)
    features["Whisper + GE2E C=0.01"] = (np.concatenate([whisper, ge2e], 1).astype(np.float64), 0.01)
    predictions: dict[tuple[str, str, str], np.ndarray] = {}
    for name, (x, c) in features.items():
        for reading, xr in (("alone", x), ("speaker", zscored(x, speakers))):
            figures = []
            for test, (train, rows) in tests.items():
                predicted = fit_predict(xr, labels, train, rows, c)
                predictions[(name, reading, test)] = predicted
                figures.append(f"{test} {uar(labels[rows], predicted):.3f}")
            loso = np.empty(len(labels), dtype=object)
            for s in np.unique(speakers[nemo]):
                loso[speakers == s] = fit_predict(xr, labels, speakers != s, speakers == s, c)
            predictions[(name, reading, "loso")] = loso[nemo]
            figures.append(
                "nEMO dev leave-one-speaker-out "
                f"{np.mean([uar(labels[speakers == s], loso[speakers == s]) for s in np.unique(speakers[nemo])]):.3f}"
            )
            print(f"{name} {reading}: " + " | ".join(figures), flush=True)
    for reading in ("alone", "speaker"):
        for test, (_, rows) in tests.items():
            both = predictions[("Whisper + GE2E C=0.01", reading, test)]
            alone = predictions[("Whisper C=0.01", reading, test)]
            low, high = speaker_bootstrap(labels[rows], both, alone, speakers[rows])
            print(f"both - Whisper, {reading}, {test}: {low:+.3f} to {high:+.3f}")


if __name__ == "__main__":
    main()
