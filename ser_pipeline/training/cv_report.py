"""The cross-validation report: `emotion-cv.md` and the confusion matrix as an SVG image."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from ser_pipeline.schema import EMOTIONS

SCORES = (
    ("emotion_uar", "7-class UAR"),
    ("emotion_accuracy", "7-class accuracy"),
    ("sentiment_uar", "sentiment UAR"),
    ("sentiment_accuracy", "sentiment accuracy"),
    ("valence_ccc", "CCC valence"),
    ("arousal_ccc", "CCC arousal"),
    ("dominance_ccc", "CCC dominance"),
)


def confusion_svg(matrix: list[list[int]], labels: list[str], title: str, cell: int = 64) -> str:
    """Rows = true class, columns = predicted class; each cell shaded by its share of the row
    (recall on the diagonal) and labelled with the count and that share."""
    counts = np.asarray(matrix, dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    left, top = 100, 70
    width, height = left + cell * len(labels) + 20, top + cell * len(labels) + 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
        f'<text x="{left + cell * len(labels) / 2}" y="40" text-anchor="middle" font-size="12">predicted</text>',
        f'<text x="14" y="{top + cell * len(labels) / 2}" font-size="12" '
        f'transform="rotate(-90 14 {top + cell * len(labels) / 2})" text-anchor="middle">true</text>',
    ]
    for j, label in enumerate(labels):
        parts.append(
            f'<text x="{left + cell * (j + 0.5)}" y="{top - 8}" text-anchor="middle" font-size="11">{escape(label)}</text>'
        )
    for i, label in enumerate(labels):
        y = top + cell * i
        parts.append(
            f'<text x="{left - 6}" y="{y + cell / 2 + 4}" text-anchor="end" font-size="11">{escape(label)}</text>'
        )
        for j in range(len(labels)):
            x, share = left + cell * j, shares[i, j]
            shade = int(255 - 200 * share)
            ink = "white" if share > 0.5 else "black"
            parts += [
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="rgb({shade},{shade},255)" stroke="#999"/>',
                f'<text x="{x + cell / 2}" y="{y + cell / 2 - 2}" text-anchor="middle" font-size="13" '
                f'fill="{ink}">{int(counts[i, j])}</text>',
                f'<text x="{x + cell / 2}" y="{y + cell / 2 + 14}" text-anchor="middle" font-size="10" '
                f'fill="{ink}">{share:.0%}</text>',
            ]
    return "\n".join([*parts, "</svg>"]) + "\n"


def _row(name: str, values: list[str]) -> str:
    return f"| {name} | " + " | ".join(values) + " |\n"


def _dims_section(dims: dict, weight: float) -> str:
    rows = ""
    for name, v in dims["scores"].items():
        held = sum(v["orderings"].values())
        ccc = " | ".join(f"{v[f'{d}_ccc']:.3f}" for d in ("valence", "arousal", "dominance"))
        rows += f"| {name} | {ccc} | {held}/{len(v['orderings'])} |\n"
    affines = "".join(
        f"| {name} | " + " | ".join(f"{a:.3f} x {b:+.3f}" for a, b in zip(c["scale"], c["shift"])) + " |\n"
        for name, c in dims["calibration"].items()
    )
    return f"""
## Valence, arousal and dominance: the branch's dims and the calibration

The branch also regresses the dims (ridge, alpha {dims["ridge_alpha"]:g}, on the same z-scored
input, against the same derived targets); "fused" averages them with the network's (weight
{weight}). A network trained on squared error pulls its dims towards the middle; CCC also
counts mean and spread, so the dims get an affine calibration that matches the targets' mean and
spread on held-out outputs (one scale and shift per dimension, as a temperature is for the
probabilities). "Calibrated" rows are held out as well: each fold is mapped by the calibration
fitted on the other four folds. In noise and on neutral-heavy baselines the fused dims get the
calibration fitted on clean clips.

| pooled held-out clips | CCC valence | CCC arousal | CCC dominance | orderings held |
|---|---|---|---|---|
{rows}
Calibration fitted on all held-out outputs (what `--calibrate ID` puts in a model's registry
entry for the pipeline to apply: "network" to every segment, "fused" to segments fused with the
branch):

| dims of | valence | arousal | dominance |
|---|---|---|---|
{affines}"""


def report_markdown(document: dict, image: str) -> str:
    folds = document["folds"]
    fold_names = [",".join(f"{a:02d}" for a in fold["held_out"]) for fold in folds]
    table = _row("held-out actors", [*fold_names, "mean ± sd of folds", "pooled"])
    table += "|---|" + "---|" * (len(folds) + 2) + "\n"
    for key, name in SCORES:
        mean, sd = document["per_fold_means"][key]
        cells = [f"{fold['scores'][key]:.3f}" for fold in folds]
        table += _row(name, [*cells, f"{mean:.3f} ± {sd:.3f}", f"**{document['pooled'][key]:.3f}**"])
    orderings = "".join(
        f"| {name} | {'holds' if held else 'FAILS'} |\n" for name, held in document["pooled"]["orderings"].items()
    )
    calibration = "".join(
        f"| {head} | {document['temperatures'][head]:.3f} | {c['nll_before']:.3f} -> {c['nll_after']:.3f} | "
        f"{c['ece_before']:.3f} -> {c['ece_after']:.3f} |\n"
        for head, c in document["calibration"].items()
    )
    branch = document.get("speaker_branch")
    branch_section = ""
    if branch:
        rows = "".join(
            f"| {name} | {v['emotion_uar']:.3f} | {v['emotion_accuracy']:.3f} | {v['sentiment_uar_from_emotions']:.3f} |\n"
            for name, v in branch["scores"].items()
        )
        c = branch["fused_calibration"]
        dims_section = _dims_section(branch["dims"], branch["weight"]) if "dims" in branch else ""
        reads, inputs = (
            (
                "utterance statistics and network log-probabilities",
                """Besides the utterance statistics it reads the network's emotion log-probabilities,
z-scored within the speaker (how much more of each emotion the network hears in an utterance
than in the speaker's others); it learns them from the training clips' held-out outputs above
(each from the fold network that never heard that actor), so they are out of sample in training
as at inference.""",
            )
            if branch.get("network_inputs", True)
            else ("utterance statistics", "It reads the utterance statistics alone.")
        )
        branch_section = f"""
## Speaker branch ({reads} z-scored within the speaker), alone and fused

Each fold's branch is trained on the fold's training actors (RAVDESS only) and fused with that
fold's network outputs (calibrated by the temperature above), weight {branch["weight"]} (the
branch's share, fixed). {inputs} "Speakers in noise" puts noise under the statistics only: the network's
outputs there are of the clean clips (the network is trained to hear through such noise; the
episodes in `docs/evaluation.md` are the check with both in noise). "Neutral-heavy baseline":
each held-out speaker's baseline comes from their neutral clips and a quarter of the others
(half neutral), as a podcast speaker talks mostly calmly; RAVDESS otherwise gives every speaker
every emotion in equal measure, which flatters the branch.

| pooled held-out clips | 7-class UAR | 7-class accuracy | sentiment UAR (summed from emotions) |
|---|---|---|---|
{rows}
Confusion matrix of the fused model (the pipeline's default for speakers with 8 or more segments):

![confusion matrix, fused](emotion-cv-confusion-fused.svg)

Fused temperature {branch["fused_temperature"]:.3f}: NLL {c["nll_before"]:.3f} -> {c["nll_after"]:.3f}, ECE {c["ece_before"]:.3f} -> {c["ece_after"]:.3f}.
{dims_section}"""
    recipe = document["recipe"]
    clips = sum(len(fold["clips"]) for fold in folds)
    context = (
        " With speaker context, each held-out clip is read against\nits speaker's other held-out clips, as the pipeline reads a named speaker's segments."
        if recipe.get("speaker_context")
        else ""
    )
    speed_share, reverb_share = recipe.get("speed_share", 0.0), recipe.get("reverb_share", 0.0)
    augmentation = f"; {speed_share:.0%} of the crops played 0.9 to 1.1 times as fast" if speed_share else ""
    augmentation += f"; {reverb_share:.0%} of the crops in a synthetic room" if reverb_share else ""
    return f"""# Emotion recipe: leave-4-actors-out cross-validation

Each fold trains the recipe of `ser-pipeline train emotion` from scratch (epochs: {recipe["epochs"]}, seed
{recipe["seed"]}, background noise in {recipe.get("noise_share", 0.7):.0%} of the crops{augmentation}) on RAVDESS without its held-out actors, plus all of TESS (TESS is only ever in training), and
scores the held-out actors' clips the way the pipeline scores a segment (its voiced part). Every
RAVDESS actor 01-20 is held out exactly once; "pooled" scores all {clips} held-out clips together.{context}

{table}
Chance: UAR 0.143 (7 classes), 0.333 (sentiment). CCCs are against the derived targets of the model
card (lexicon coordinates per class, intensity and acoustic evidence moving arousal), not human
ratings.

## Confusion matrix of the network alone (pooled held-out clips)

![confusion matrix]({image})

## Orderings of dimension class means (pooled held-out clips)

| ordering | |
|---|---|
{orderings}
## Calibration (temperature scaling on the held-out folds' logits)

| head | temperature | NLL before -> after | ECE (10 bins) before -> after |
|---|---|---|---|
{calibration}
The temperatures divide the logits of models trained by this recipe before the softmax, so the
`p_*` columns say how often a label that confident is right on voices the model never heard.
They were fitted on these held-out outputs, so the "after" figures are in-sample for T (one
parameter per head).
{branch_section}
## Reproduce
`{document["command"]}`

`--reuse` redoes the speaker branch, the dims calibration and this page from `emotion-cv.json`
without training the folds again (about a minute).
"""


def write_report(document: dict, output: Path) -> list[Path]:
    image = output / "emotion-cv-confusion.svg"
    image.write_text(confusion_svg(document["confusion"], list(EMOTIONS), "7 emotions, leave-4-actors-out (pooled)"))
    written = [image]
    if "speaker_branch" in document:
        fused = output / "emotion-cv-confusion-fused.svg"
        title = "7 emotions, network + speaker branch, leave-4-actors-out (pooled)"
        fused.write_text(confusion_svg(document["speaker_branch"]["fused_confusion"], list(EMOTIONS), title))
        written.append(fused)
    markdown = output / "emotion-cv.md"
    markdown.write_text(report_markdown(document, image.name))
    return [markdown, *written]
