"""Probe (docs/evaluation.md): the emotion network with its input normalised per speaker
instead of per utterance, on one leave-4-actors-out fold (actors 01-04 held out).

Mode A is the recipe as it is (per-utterance CMVN inside the network). Mode B z-scores each
utterance's features by its speaker's statistics under the same recording condition (gain,
noise level and colour): in training a bank of six conditions per speaker, the statistics over
20 of the speaker's clips in that condition; at test over all the held-out speaker's clips.
Both are scored on the held-out actors' clips clean and in white noise at RMS 0.001-0.003 per
speaker (as in the episodes); printed: 7-class UAR of the network alone.

    .venv/bin/python research/speaker_norm_probe.py A &   # the two together: about 25 minutes
    .venv/bin/python research/speaker_norm_probe.py B     # [epochs] as a second argument
"""

import json
import random
from pathlib import Path
from unittest.mock import patch

import numpy as np
import torch

from ser_pipeline.architectures import EmotionNet
from ser_pipeline.audio import SAMPLE_RATE
from ser_pipeline.features import FrontEndConfig, LogMel, fused_features, voiced_span
from ser_pipeline.metrics import unweighted_average_recall
from ser_pipeline.schema import EMOTIONS
from ser_pipeline.training import emotion as E
from ser_pipeline.training.data import ravdess_clips, read_clip, tess_clips

HELD = (1, 2, 3, 4)
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FE = LogMel(FrontEndConfig())
NM = FrontEndConfig().n_mfcc


class SpeakerNormNet(EmotionNet):
    """EmotionNet without its per-utterance CMVN: the input arrives normalised per speaker."""

    def embed(self, features, lengths):
        with patch("ser_pipeline.architectures.masked_cmvn", lambda x, mask: x * mask[..., None]):
            return super().embed(features, lengths)


def voiced_features(x):
    lm = FE.frames(torch.from_numpy(x.astype(np.float32)))
    return fused_features(lm[slice(*voiced_span(lm))], NM)


class Condition:
    """A recording condition: a gain and, if given, 30 s of background noise that utterances
    are laid over at random offsets (utterances are shorter than that)."""

    def __init__(self, gain_db: float, noise: np.ndarray | None):
        self.gain, self.noise = 10 ** (gain_db / 20), noise

    def apply(self, x, rng):
        y = x * self.gain
        if self.noise is not None:
            start = rng.integers(0, len(self.noise) - len(y))
            y = y + self.noise[start : start + len(y)]
        return y.astype(np.float32)


def noise_bed(rms: float, rng) -> np.ndarray:
    return (rms * E.colored_noise(30 * SAMPLE_RATE, rng)).astype(np.float32)


def speaker_stats(samples, cond, rng):
    frames = torch.cat([voiced_features(cond.apply(x, rng)) for x in samples])
    return frames.mean(0), frames.std(0) + 1e-3


def evaluate(predict_fn, test, waves, mode, rng, white_levels):
    out = {}
    for name in ("clean", "white"):
        truth, pred = [], []
        for spk in sorted({c.speaker for c in test}):
            mine = [c for c in test if c.speaker == spk]
            noise = white_levels[spk] * rng.standard_normal(30 * SAMPLE_RATE) if name == "white" else None
            cond = Condition(0.0, None if noise is None else noise.astype(np.float32))
            xs = [cond.apply(waves[c.path], rng) for c in mine]
            feats = [voiced_features(x) for x in xs]
            if mode == "B":
                allf = torch.cat(feats)
                mu, sd = allf.mean(0), allf.std(0) + 1e-3
                feats = [(f - mu) / sd for f in feats]
            logits = predict_fn(feats)
            truth += [c.label for c in mine]
            pred += [EMOTIONS[i] for i in logits.argmax(1)]
        out[name] = round(unweighted_average_recall(truth, pred, EMOTIONS), 3)
    return out


def main(mode: str, epochs: int) -> None:
    torch.set_num_threads(1)
    recipe = E.EmotionRecipe(data=DATA, held_out_actors=HELD, epochs=epochs)
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    rng = random.Random(0)
    nrng = np.random.default_rng(0)
    held = {f"ravdess-{a:02d}" for a in HELD}
    clips = ravdess_clips(DATA) + tess_clips(DATA)
    train = [c for c in clips if c.speaker not in held]
    test = [c for c in clips if c.speaker in held]
    waves = {c.path: read_clip(c.path) for c in clips}
    trng = np.random.default_rng(7)
    white_levels = {s: trng.uniform(0.001, 0.003) for s in sorted(held)}
    if mode == "A":
        trained = E.train(recipe, log=lambda m: print("[A]", m, flush=True))
        net = trained.network
    else:
        lexicon = DATA / "lexicon" / "emotion_vad.csv"
        print("[B] targets", flush=True)
        targets = dict(
            zip(
                (c.path for c in train),
                E.derived_dims(lexicon, train, [waves[c.path] for c in train], recipe.acoustic_arousal_weight),
            )
        )
        voiced = {}
        for c in train:
            lm = FE.frames(torch.from_numpy(waves[c.path]))
            voiced[c.path] = tuple(FE.config.hop_length * f for f in voiced_span(lm))
        print("[B] condition bank", flush=True)
        by_spk = {}
        for i, c in enumerate(train):
            by_spk.setdefault(c.speaker, []).append(i)
        bank = {}
        for spk, idx in by_spk.items():
            bank[spk] = []
            for k in range(6):
                gain_db = nrng.uniform(-6, 6)
                cond = Condition(gain_db, noise_bed(E.noise_level(nrng), nrng) if k and nrng.random() < 0.85 else None)
                pick = [waves[train[i].path] for i in rng.sample(idx, min(20, len(idx)))]
                bank[spk].append((cond, *speaker_stats(pick, cond, nrng)))
        net = SpeakerNormNet(recipe.network)
        train_dims = torch.from_numpy(np.stack([targets[c.path] for c in train]))
        optimisation = E.Optimisation(net, recipe, train, train_dims)
        for epoch in range(recipe.epochs):
            net.train()
            order = E._balanced_epoch(train, rng)
            total = 0.0
            for first in range(0, len(order), recipe.batch_size):
                batch = order[first : first + recipe.batch_size]
                feats = []
                for i in batch:
                    c = train[i]
                    cond, mu, sd = rng.choice(bank[c.speaker])
                    x = cond.apply(E._crop(waves[c.path], voiced[c.path], rng, recipe), nrng)
                    lm = FE.frames(torch.from_numpy(x))
                    lm = E._spec_augment(lm, rng)
                    feats.append((fused_features(lm, NM) - mu) / sd)
                padded, lengths = E._batch(feats)
                loss = optimisation.loss(net(padded, lengths), batch)
                optimisation.step(loss)
                total += loss.item() * len(batch)
            print(f"[B] epoch {epoch + 1} loss {total / len(order):.3f}", flush=True)
    net.eval()

    def predict_fn(feats):
        with torch.inference_mode():
            padded, lengths = E._batch(feats)
            return net(padded, lengths)["emotion"].numpy()

    res = evaluate(predict_fn, test, waves, mode, np.random.default_rng(3), white_levels)
    print(f"[{mode}] RESULT", json.dumps(res), flush=True)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["A", "B"], help="A: per-utterance CMVN (the recipe); B: per-speaker")
    parser.add_argument("epochs", type=int, nargs="?", default=40)
    arguments = parser.parse_args()
    main(arguments.mode, arguments.epochs)
