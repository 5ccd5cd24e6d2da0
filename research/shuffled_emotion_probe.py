"""Does speech shuffled into no language teach the Whisper emotion head to carry across languages,
as it taught the laughter detector (`laughter-tcn-v9`)? Development speakers only (nEMO's
final-test speakers are never read).

Every development clip (RAVDESS, TESS, nEMO's development speakers) is described by the frozen
Whisper encoder as recorded and once shuffled (`training.laughter.shuffled`: pieces of 0.1-0.35 s
in a random order, the clip's emotion kept as its label). The probe's logistic regressions
(`whisper_head_probe.py`: all five layers, C 0.01; alone, and z-scored per speaker, a shuffled
copy being a speaker of its own) are trained without and with the shuffled copies of the training
speakers' clips, and scored on clips as recorded:
(a) cross-language, RAVDESS + TESS -> nEMO's development speakers (7 classes; nEMO has no disgust),
(b) the other way, nEMO's development speakers -> RAVDESS's held-out actors (6 classes),
(c) within English, the other RAVDESS actors and TESS -> RAVDESS's held-out actors.
Intervals: 95% paired bootstrap over the test speakers.

    .venv/bin/python research/shuffled_emotion_probe.py   # about 10 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
from whisper_head_probe import describe_corpora, fit_predict, uar, zscored


def describe_shuffled(cache: Path) -> np.ndarray:
    """Every development clip shuffled once (seeded by its index), described as `describe_corpora` does."""
    import torch

    from ser_pipeline.clip_evaluation import in_split
    from ser_pipeline.training.data import nemo_clips, ravdess_clips, read_clip, shared_data_dir, tess_clips
    from ser_pipeline.training.laughter import shuffled
    from ser_pipeline.whisper_emotion import describe_many
    from ser_pipeline.whisper_encoder import load_encoder

    if cache.is_file():
        return np.load(cache)
    data = shared_data_dir()
    clips = [c for c in ravdess_clips(data) + tess_clips(data) + nemo_clips(data) if in_split(c, "dev")]
    encoder, rows = load_encoder(torch.device("cpu")), []
    for first in range(0, len(clips), 250):
        audio = [
            shuffled(read_clip(c.path), random.Random(first + k)) for k, c in enumerate(clips[first : first + 250])
        ]
        rows.append(describe_many(encoder, audio, torch.device("cpu"), fast=False))
        print(f"  shuffled and described {min(first + 250, len(clips))}/{len(clips)} clips", flush=True)
    out = np.concatenate(rows).astype(np.float32)
    np.save(cache, out)
    return out


def paired_interval(truth, first, second, speakers, rounds: int = 1000) -> tuple[float, float]:
    """95% bootstrap over speakers of uar(second) - uar(first)."""
    from ser_pipeline.clip_evaluation import percentile_interval, speaker_draws

    names = sorted(set(speakers))
    differences = []
    for rows in speaker_draws(names, rounds, seed=0):
        picked = np.concatenate([np.flatnonzero(speakers == names[i]) for i in rows])
        differences.append(uar(truth[picked], second[picked]) - uar(truth[picked], first[picked]))
    return percentile_interval(differences)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--c", type=float, default=0.01)
    parser.add_argument("--cache", type=Path, default=Path("whisper-descriptions-dev.npz"))
    parser.add_argument("--shuffled-cache", type=Path, default=Path("whisper-descriptions-dev-shuffled.npy"))
    args = parser.parse_args()
    described = describe_corpora(args.cache)
    x, labels, speakers, corpora = (described[k] for k in ("descriptions", "labels", "speakers", "corpora"))
    x_shuffled = describe_shuffled(args.shuffled_cache)
    from ser_pipeline.training.data import HELD_OUT_ACTORS, ravdess_voices

    held = np.isin(speakers, sorted(ravdess_voices(HELD_OUT_ACTORS)))
    nemo = corpora == "nemo"
    # Both copies side by side: rows [0, n) as recorded, [n, 2n) shuffled, each copy its own speaker.
    n = len(x)
    x_both = np.concatenate([x, x_shuffled]).astype(np.float64)
    labels_both = np.concatenate([labels, labels])
    speakers_both = np.concatenate([speakers, np.char.add(speakers.astype(str), "~shuffled")])
    checks = {
        "RAVDESS + TESS -> nEMO dev": (~nemo, nemo),
        "nEMO dev -> held-out RAVDESS (6 classes)": (nemo, held & (labels != "disgust")),
        "other RAVDESS + TESS -> held-out RAVDESS": (~nemo & ~held, held),
    }
    for reading, features in (("alone", x_both), ("speaker", zscored(x_both, speakers_both))):
        for name, (train, test) in checks.items():
            test_rows = np.flatnonzero(test)
            plain = fit_predict(features, labels_both, np.concatenate([train, np.zeros(n, bool)]), test_rows, args.c)
            mixed = fit_predict(features, labels_both, np.concatenate([train, train]), test_rows, args.c)
            truth, who = labels[test_rows], speakers[test_rows]
            low, high = paired_interval(truth, plain, mixed, who)
            print(
                f"{reading:7} {name}: as recorded {uar(truth, plain):.3f}, with shuffled copies"
                f" {uar(truth, mixed):.3f} (paired {low:+.3f} to {high:+.3f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
