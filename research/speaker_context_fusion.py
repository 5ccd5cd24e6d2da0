"""Fuses the outputs of `speaker_context_probe.py` with a speaker branch (docs/evaluation.md).

For each probe file (one leave-4-actors-out fold), branches are fitted on the other folds' actors
as `train speaker-branch` fits them (clean statistics and three noisy rooms per speaker): "S" on the
statistics alone, "V3" on the statistics and the network's cross-validated probabilities (the
default branch). They are fused with the recipe's network (its cross-validated outputs of clean
clips, from docs/emotion-cv.json: the network holds up in noise) and with the probe's network,
with and without its speaker context, at several branch shares. Printed: 7-class UAR pooled
over the files' clips, clean and in the probe's white noise.

    .venv/bin/python research/speaker_context_fusion.py C1.json C2.json ...   # about a minute

A file given as A.json+B.json stands for the two runs' probabilities averaged (two seeds).
"""

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from sentence_gap import scored_clips

from ser_pipeline.architectures import fuse_emotions
from ser_pipeline.metrics import unweighted_average_recall
from ser_pipeline.schema import EMOTIONS
from ser_pipeline.training.speaker_branch import clip_statistics, fit_branch, network_probabilities, zscored_inputs

ROOT = Path(__file__).resolve().parents[1]
SHARES = (0.2, 0.3, 0.4, 0.5)


def averaged(runs: list[list[dict]]) -> list[dict]:
    """One probe file from several runs on the same clips (networks of different seeds): their
    probabilities averaged."""
    for items in zip(*runs, strict=True):
        if len({(p["file"], p["condition"], p["speaker"]) for p in items}) != 1:
            raise ValueError("the runs to average hold different clips")
        for name in ("with", "without"):
            items[0][name] = np.mean([p[name] for p in items], axis=0).tolist()
    return runs[0]


def main(paths: list[str]) -> None:
    document = json.loads((ROOT / "docs" / "emotion-cv.json").read_text())
    clips = scored_clips(ROOT.parent / "shared" / "data", document)
    clean, noisy = clip_statistics(clips)
    network = network_probabilities(document, clips)
    speakers = [c.speaker for c in clips]
    row_of = {c.path.name: i for i, c in enumerate(clips)}
    truth, predicted = defaultdict(list), defaultdict(list)
    for path in paths:
        probe = averaged([json.loads(Path(part).read_text()) for part in path.split("+")])
        held = {p.get("actor", p["speaker"]) for p in probe}
        rows = [i for i, s in enumerate(speakers) if s not in held]
        conditions = [clean, *noisy]  # as `fit_on_rooms` trains the branch
        others, labels = [speakers[i] for i in rows], [clips[i].label for i in rows] * len(conditions)
        statistics_only = fit_branch(torch.cat([zscored_inputs(s[rows], None, others) for s in conditions]), labels)
        with_network = fit_branch(
            torch.cat([zscored_inputs(s[rows], network[rows], others) for s in conditions]), labels, None, 7
        )
        for condition in ("clean", "white"):
            items = [p for p in probe if p["condition"] == condition]
            truth[condition] += [p["label"] for p in items]
            statistics = torch.tensor([p["statistics"] for p in items])
            spk = [p["speaker"] for p in items]
            networks = {
                "recipe": network[[row_of[p["file"]] for p in items]],
                "context": np.array([p["with"] for p in items], np.float32),
                "context, none given": np.array([p["without"] for p in items], np.float32),
            }
            with torch.no_grad():
                s_logits = statistics_only(zscored_inputs(statistics, None, spk))
                predicted[condition, "S alone"] += s_logits.argmax(1).tolist()
                for name, probs in networks.items():
                    predicted[condition, f"{name} alone"] += probs.argmax(1).tolist()
                    v3_logits = with_network(zscored_inputs(statistics, probs, spk)) if name == "recipe" else None
                    for share in SHARES:
                        fused = fuse_emotions(torch.from_numpy(probs), s_logits, share)
                        predicted[condition, f"{name} + S {share}"] += fused.argmax(1).tolist()
                        if v3_logits is not None:
                            fused = fuse_emotions(torch.from_numpy(probs), v3_logits, share)
                            predicted[condition, f"{name} + V3 {share}"] += fused.argmax(1).tolist()
    print(f"| {len(truth['clean'])} clips | clean | white noise | gap |\n|---|---|---|---|")
    for name in sorted({key[1] for key in predicted}):
        uar = [
            unweighted_average_recall(truth[c], [EMOTIONS[i] for i in predicted[c, name]], EMOTIONS)
            for c in ("clean", "white")
        ]
        print(f"| {name} | {uar[0]:.3f} | {uar[1]:.3f} | {uar[0] - uar[1]:+.3f} |")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("probes", nargs="+", help="outputs of speaker_context_probe.py, one per fold")
    torch.set_num_threads(1)
    main(parser.parse_args().probes)
