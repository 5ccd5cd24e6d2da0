"""The development choices of `ser-whisper-head-v1`: which Whisper layers, which regularisation,
and what the speaker reading gives, on development speakers only (nEMO's final-test speakers are
never read).

1. Describes every clip of RAVDESS, TESS and nEMO's development speakers with the frozen encoder
   (clean, float32; cached in --cache) -- about 5 minutes on 2 cores.
2. For each layer set and C: logistic regressions, alone (standardised) and against the speaker
   (z-scored per speaker), scored on (a) the held-out RAVDESS actors 01, 02, 05, 08, 11, (b) nEMO
   development speakers left out one at a time, (c) cross-corpus: trained on RAVDESS + TESS,
   tested on nEMO's development speakers, and the other way (nEMO's development speakers -> the
   held-out RAVDESS actors, disgust left out); and the speaker reading with each speaker's statistics
   taken from 20 clips of which 70% are neutral (a mostly-neutral voice).

Usage: .venv/bin/python research/whisper_head_probe.py [--layers 01234,012,234] [--c 0.003,0.01,0.03]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def describe_corpora(cache: Path) -> dict[str, np.ndarray]:
    import torch

    from ser_pipeline.clip_evaluation import in_split
    from ser_pipeline.training.data import nemo_clips, ravdess_clips, shared_data_dir, tess_clips
    from ser_pipeline.training.whisper_head import clip_descriptions

    if cache.is_file():
        return dict(np.load(cache))
    data = shared_data_dir()
    clips = [c for c in ravdess_clips(data) + tess_clips(data) + nemo_clips(data) if in_split(c, "dev")]
    described = {
        "descriptions": clip_descriptions(clips, torch.device("cpu")),
        "labels": np.array([c.label for c in clips]),
        "speakers": np.array([c.speaker for c in clips]),
        "corpora": np.array([c.corpus for c in clips]),
    }
    np.savez(cache, **described)
    return described


def uar(truth: np.ndarray, predicted: np.ndarray) -> float:
    from ser_pipeline.metrics import unweighted_average_recall
    from ser_pipeline.schema import EMOTIONS

    return unweighted_average_recall(list(truth), list(predicted), EMOTIONS)


def zscored(x: np.ndarray, speakers: np.ndarray, baseline: dict[str, np.ndarray] | None = None) -> np.ndarray:
    out = np.empty_like(x)
    for speaker in np.unique(speakers):
        rows = speakers == speaker
        basis = x[baseline[speaker]] if baseline else x[rows]
        out[rows] = (x[rows] - basis.mean(0)) / (basis.std(0) + 1e-5)
    return out


def fit_predict(x: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray, c: float, x_test=None):
    from sklearn.linear_model import LogisticRegression

    mean, scale = x[train].mean(0), x[train].std(0) + 1e-5
    fitted = LogisticRegression(C=c, max_iter=500).fit((x[train] - mean) / scale, labels[train])
    return fitted.predict(((x if x_test is None else x_test)[test] - mean) / scale)


def mostly_neutral_baselines(labels, speakers, rng, size=20, neutral=0.7) -> dict[str, np.ndarray]:
    baselines = {}
    for speaker in np.unique(speakers):
        rows = np.flatnonzero(speakers == speaker)
        calm, other = rows[labels[rows] == "neutral"], rows[labels[rows] != "neutral"]
        k = min(int(size * neutral), len(calm))
        picked = [rng.choice(calm, k, replace=False), rng.choice(other, size - k, replace=False)]
        baselines[speaker] = np.concatenate(picked)
    return baselines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", default="01234", help="comma-separated layer sets (0: the convolutions)")
    parser.add_argument("--c", default="0.01", help="comma-separated logistic regression C values")
    parser.add_argument("--cache", type=Path, default=Path("whisper-descriptions-dev.npz"))
    args = parser.parse_args()
    described = describe_corpora(args.cache)
    x_all, labels, speakers, corpora = (described[k] for k in ("descriptions", "labels", "speakers", "corpora"))
    from ser_pipeline.training.data import HELD_OUT_ACTORS, ravdess_voices

    held = np.isin(speakers, sorted(ravdess_voices(HELD_OUT_ACTORS)))
    nemo = corpora == "nemo"
    baselines = mostly_neutral_baselines(labels, speakers, np.random.default_rng(0))
    for layer_set in args.layers.split(","):
        columns = np.concatenate([np.arange(int(layer) * 768, (int(layer) + 1) * 768) for layer in layer_set])
        for c in (float(v) for v in args.c.split(",")):
            x = x_all[:, columns].astype(np.float64)
            for reading, xr in (("alone", x), ("speaker", zscored(x, speakers))):
                ravdess = uar(labels[held], fit_predict(xr, labels, ~held, held, c))
                loso = [
                    uar(labels[speakers == s], fit_predict(xr, labels, speakers != s, speakers == s, c))
                    for s in np.unique(speakers[nemo])
                ]
                cross = uar(labels[nemo], fit_predict(xr, labels, ~nemo, nemo, c))
                # The other way: nEMO's development speakers -> RAVDESS's held-out actors, without
                # disgust (nEMO has none, so a model trained on it cannot say it).
                target = held & (labels != "disgust")
                reverse = uar(labels[target], fit_predict(xr, labels, nemo, target, c))
                print(
                    f"layers {layer_set} C {c:g} {reading}: held-out RAVDESS {ravdess:.3f} | nEMO dev "
                    f"leave-one-speaker-out {np.mean(loso):.3f} | RAVDESS+TESS -> nEMO dev {cross:.3f} | "
                    f"nEMO dev -> held-out RAVDESS (6 classes) {reverse:.3f}",
                    flush=True,
                )
            neutral_basis = zscored(x, speakers, baselines)
            loso = [
                uar(
                    labels[speakers == s],
                    fit_predict(zscored(x, speakers), labels, speakers != s, speakers == s, c, neutral_basis),
                )
                for s in np.unique(speakers[nemo])
            ]
            print(f"  speaker reading, statistics from a mostly-neutral baseline: nEMO dev {np.mean(loso):.3f}")


if __name__ == "__main__":
    main()
