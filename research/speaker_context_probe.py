"""Probe (docs/evaluation.md): the emotion network reading its speaker's other utterances, on one
leave-4-actors-out fold (actors 01-04 held out unless --held says otherwise). Shipped, with
--level, as `ser-crnn-v2` (`ser-pipeline train emotion`, `EmotionNetConfig.speaker_context`);
this script stays to reproduce the probe's figures and the variant without the level.

The recipe's network (per-utterance CMVN, CNN, BiLSTM, attention pooling) embeds each utterance;
the heads read the embedding and how it differs from the mean embedding of the speaker's other
utterances in the same recording condition: speaker normalisation after the network, in the
space it has learnt to keep steady in noise, instead of on its input (`speaker_norm_probe.py`).
Training batches hold groups of eight crops of one speaker under one condition (gain, noise
level and colour); one group in five goes without its context (the difference zeroed), as for
an utterance whose speaker is unknown. With --level the heads also read how the utterance's
loudness and brightness (`level`) depart from the speaker's mean. Scored on the held-out actors'
clips, clean and in white noise at RMS 0.001-0.003 per speaker (as in the episodes), with and
without the context.

    .venv/bin/python research/speaker_context_probe.py --level [--held 5,6,7,8] [--out C.json]   # ~13 min
    .venv/bin/python research/speaker_context_probe.py --level --held 1,2,5,8,11 --episodes-out E.json
    .venv/bin/python research/speaker_context_probe.py --level --held 1,2,5,8,11 --episodes-out E1.json --seed 1
    .venv/bin/python research/speaker_context_fusion.py C1.json ... C5.json   # or E.json, or E.json+E1.json

With --out it also writes, per held-out clip and condition, the probabilities with and
without context and the speaker branch's statistics of the clip as scored (for fusion probes);
--episodes-out does the same for the episodes' sentences (see `episode_sentences`). The five
folds are --held 1,2,3,4 / 5,6,7,8 / 9,10,11,12 / 13,14,15,16 / 17,18,19,20 (add --threads 1
to run two or three side by side). Figures in docs/evaluation.md.
"""

import argparse
import json
import random

import numpy as np
import torch
from speaker_norm_probe import DATA, FE, HELD, NM, Condition, noise_bed
from torch import nn

from ser_pipeline.architectures import EmotionNet, EmotionNetConfig
from ser_pipeline.features import fused_features, utterance_statistics, voiced_span
from ser_pipeline.metrics import unweighted_average_recall
from ser_pipeline.schema import EMOTIONS
from ser_pipeline.training import emotion as E
from ser_pipeline.training.data import ravdess_clips, read_clip, tess_clips

GROUP = 8
CONTEXT_DROPOUT = 0.2


def level(features):
    """How loud and how bright an utterance is, which the network's per-utterance normalisation
    removes: the mean features of its louder half of frames (louder: summed mel power at or
    above the median), and the median and 90th percentile of frame log-energy."""
    energy = torch.logsumexp(features[:, : FE.config.n_mels], 1)
    loud = features[energy >= energy.median()].mean(0)
    return torch.cat([loud, torch.quantile(energy, torch.tensor([0.5, 0.9]))])


class ContextNet(EmotionNet):
    """EmotionNet whose heads read [embedding, embedding - speaker's mean embedding] and, with
    `levels`, how the utterance's `level` departs from the speaker's mean level."""

    def __init__(self, config: EmotionNetConfig, levels: int = 0):
        super().__init__(config)
        both = 4 * config.lstm_hidden + levels
        self.emotion = nn.Linear(both, config.n_emotions)
        self.sentiment = nn.Linear(both, config.n_sentiments)
        self.dims = nn.Linear(both, config.n_dims)

    def heads(self, pooled, relative):
        z = self.dropout(torch.cat([pooled, relative], 1))
        return {"emotion": self.emotion(z), "sentiment": self.sentiment(z), "dims": torch.sigmoid(self.dims(z))}


def leave_one_out_relative(pooled, groups):
    """Each row minus the mean of the other rows of its group (groups: lists of row indices)."""
    relative = torch.zeros_like(pooled)
    for rows in groups:
        block = pooled[rows]
        others = (block.sum(0, keepdim=True) - block) / (len(rows) - 1)
        relative[rows] = block - others
    return relative


def grouped_epoch(train, rng):
    """The recipe's balanced epoch, regrouped: runs of GROUP clips of one speaker, about 4 runs a batch."""
    by_speaker = {}
    for i in E._balanced_epoch(train, rng):
        by_speaker.setdefault(train[i].speaker, []).append(i)
    groups = []
    for idx in by_speaker.values():
        chunks = [idx[k : k + GROUP] for k in range(0, len(idx), GROUP)]
        if len(chunks) > 1 and len(chunks[-1]) < 2:
            chunks[-2] += chunks.pop()
        groups += [c for c in chunks if len(c) >= 2]
    rng.shuffle(groups)
    batches, current = [], []
    for group in groups:  # closed at 32 clips or more: never more batches than the recipe's schedule
        current.append(group)
        if sum(map(len, current)) >= 32:
            batches.append(current)
            current = []
    return batches + [current] if current else batches


def predict(net, feats, with_context, levels):
    """Emotion probabilities of one speaker's utterances, scored together."""
    with torch.inference_mode():
        padded, lengths = E._batch(feats)
        pooled = net.embed(padded, lengths)
        described = torch.cat([pooled, torch.stack([level(f) for f in feats])], 1) if levels else pooled
        relative = leave_one_out_relative(described, [list(range(len(feats)))])
        return torch.softmax(net.heads(pooled, relative if with_context else torch.zeros_like(relative))["emotion"], 1)


def scored_rows(net, levels, samples, rows):
    """`rows` (a dict per utterance of one speaker) with the probabilities with and without
    context and the speaker branch's statistics of each utterance's voiced part (one log-mel
    pass gives both the network's input and the statistics)."""
    voiced = []
    for x in samples:
        logmel = FE.frames(torch.from_numpy(x.astype(np.float32)))
        voiced.append(logmel[slice(*voiced_span(logmel))])
    feats = [fused_features(v, NM) for v in voiced]
    probs = {w: predict(net, feats, w, levels) for w in (True, False)}
    return [
        {
            **row,
            "with": probs[True][k].tolist(),
            "without": probs[False][k].tolist(),
            "statistics": utterance_statistics(v, NM).tolist(),
        }
        for k, (row, v) in enumerate(zip(rows, voiced, strict=True))
    ]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--held", default=",".join(map(str, HELD)), help="held-out RAVDESS actors")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="of the network's training (the test noise stays fixed)")
    parser.add_argument("--level", action="store_true", help="the heads also read the utterance's relative level")
    parser.add_argument("--episodes-out", help="with --held 1,2,5,8,11: the episodes' sentences scored, to this file")
    parser.add_argument("--out", help="JSON file for the held-out clips' probabilities and statistics")
    parser.add_argument("--noise-share", type=float, default=E.EmotionRecipe.noise_share, help="of the groups in noise")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    actors = tuple(int(a) for a in args.held.split(","))
    recipe = E.EmotionRecipe(data=DATA, held_out_actors=actors, epochs=args.epochs, noise_share=args.noise_share)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng, nrng = random.Random(args.seed), np.random.default_rng(args.seed)
    held = {f"ravdess-{a:02d}" for a in actors}
    clips = ravdess_clips(DATA) + tess_clips(DATA)
    train = [c for c in clips if c.speaker not in held]
    test = [c for c in clips if c.speaker in held]
    waves = {c.path: read_clip(c.path) for c in clips}
    lexicon = DATA / "lexicon" / "emotion_vad.csv"
    targets = E.derived_dims(lexicon, train, [waves[c.path] for c in train], recipe.acoustic_arousal_weight)
    voiced = {}
    for c in train:
        lm = FE.frames(torch.from_numpy(waves[c.path]))
        voiced[c.path] = tuple(FE.config.hop_length * f for f in voiced_span(lm))
    levels = FE.config.n_mels + NM + 2 if args.level else 0
    net = ContextNet(recipe.network, levels)
    optimisation = E.Optimisation(net, recipe, train, torch.from_numpy(targets))
    for epoch in range(recipe.epochs):
        net.train()
        total, seen = 0.0, 0
        for batch_groups in grouped_epoch(train, rng):
            feats, batch, rows, group_levels = [], [], [], []
            for group in batch_groups:
                noisy = nrng.random() < recipe.noise_share
                cond = Condition(nrng.uniform(-6, 6), noise_bed(E.noise_level(nrng), nrng) if noisy else None)
                rows.append(list(range(len(batch), len(batch) + len(group))))
                for i in group:
                    c = train[i]
                    x = cond.apply(E._crop(waves[c.path], voiced[c.path], rng, recipe), nrng)
                    lm = FE.frames(torch.from_numpy(x))
                    if levels:
                        group_levels.append(level(fused_features(lm, NM)))
                    feats.append(fused_features(E._spec_augment(lm, rng), NM))
                    batch.append(i)
            padded, lengths = E._batch(feats)
            pooled = net.embed(padded, lengths)
            relative = leave_one_out_relative(
                torch.cat([pooled, torch.stack(group_levels)], 1) if levels else pooled, rows
            )
            keep = torch.ones(len(batch), 1)
            for r in rows:
                if rng.random() < CONTEXT_DROPOUT:
                    keep[r] = 0.0
            loss = optimisation.loss(net.heads(pooled, relative * keep), batch)
            optimisation.step(loss)
            total += loss.item() * len(batch)
            seen += len(batch)
        print(f"[C] epoch {epoch + 1} loss {total / seen:.3f}", flush=True)
    net.eval()
    trng = np.random.default_rng(7)
    white_levels = {s: trng.uniform(0.001, 0.003) for s in sorted(held)}
    erng = np.random.default_rng(3)
    result, saved = {}, []
    for name in ("clean", "white"):
        for spk in sorted(held):
            mine = [c for c in test if c.speaker == spk]
            noise = white_levels[spk] * erng.standard_normal(30 * 16000) if name == "white" else None
            cond = Condition(0.0, None if noise is None else noise.astype(np.float32))
            heard = [cond.apply(waves[c.path], erng) for c in mine]
            rows = [{"file": c.path.name, "speaker": spk, "label": c.label, "condition": name} for c in mine]
            saved += scored_rows(net, levels, heard, rows)
        scored = [row for row in saved if row["condition"] == name]
        for context in ("with", "without"):
            predicted = [EMOTIONS[int(np.argmax(row[context]))] for row in scored]
            truth = [row["label"] for row in scored]
            result[f"{name}, {context} context"] = round(unweighted_average_recall(truth, predicted, EMOTIONS), 3)
    print("[C] RESULT", json.dumps(result), flush=True)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(saved, handle)
    if args.episodes_out:
        with open(args.episodes_out, "w") as handle:
            json.dump(episode_sentences(net, levels), handle)


def episode_sentences(net, levels):
    """The 235 sentences of ../shared/data/episodes as cut from the episodes (condition "white")
    and as the clean source clip cut to the same stretch (condition "clean"), each episode
    speaker's sentences together, as `research/sentence_gap.py` part 1 takes them."""
    from sentence_gap import episode_sources

    from ser_pipeline.evaluation import episode_truth_files, read_truth

    episodes = DATA / "episodes"
    files = [
        row["source"].rsplit("/", 1)[-1]
        for _, truth_file in sorted(episode_truth_files(episodes).items())
        for row in read_truth(truth_file)[0]
    ]
    sources = episode_sources(episodes, DATA, np.random.default_rng(0))
    saved = []
    for source, condition in (("cut from the episode", "white"), ("clean clip, same stretch", "clean")):
        rows = [(*row, file) for row, file in zip(sources[source], files, strict=True)]
        for key in dict.fromkeys(row[:2] for row in rows):
            mine = [row for row in rows if row[:2] == key]
            described = [
                {
                    "file": file,
                    "speaker": "/".join(key),
                    "actor": f"ravdess-{file.split('.')[0].split('-')[-1]}",
                    "label": label,
                    "condition": condition,
                }
                for _, _, label, _, _, file in mine
            ]
            saved += scored_rows(net, levels, [row[3] for row in mine], described)
    return saved


if __name__ == "__main__":
    main()
