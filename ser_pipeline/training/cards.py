"""Model-card text for the recipes' published models (data, split, licence, measured scores)."""

from __future__ import annotations

from ser_pipeline.schema import EMOTIONS


def _confusion_table(matrix: list[list[int]]) -> str:
    header = "| true \\ predicted | " + " | ".join(EMOTIONS) + " |\n|---|" + "---|" * len(EMOTIONS) + "\n"
    rows = "".join(f"| {label} | " + " | ".join(map(str, row)) + " |\n" for label, row in zip(EMOTIONS, matrix))
    return header + rows


def emotion_card(recipe, scores: dict, command: str) -> str:
    actors = ", ".join(f"{a:02d}" for a in recipe.held_out_actors)
    return f"""
Emotion (7 classes), sentiment (3 classes) and valence/arousal/dominance (0..1) from one
network: fused log-mel (64) + MFCC (20) frames at 100 per second, per-utterance mean/variance
normalisation, three masked 1-D conv blocks, a BiLSTM and attention pooling, three heads.

## Data and split
- Training: RAVDESS speech actors 01-20 except the held-out ones, and TESS (both speakers),
  from `../shared/data` (16 kHz mono). RAVDESS calm counts as neutral, TESS "ps" as surprise.
- Held out (never seen in training): RAVDESS actors {actors}: every RAVDESS voice that appears
  in `../shared/data/episodes`, so episode-level checks are speaker-independent as well.
- Augmentation: random crops of {recipe.min_crop_s}-{recipe.max_crop_s} s of the voiced part,
  SpecAugment (two frequency masks, one time mask); class-weighted cross-entropy.
- Dimensional targets are derived, not human ratings: each class's NRC VAD lexicon
  coordinates (`lexicon/emotion_vad.csv`; RAVDESS calm uses "calm"), with RAVDESS strong
  intensity raising arousal by 0.1 and normal intensity lowering it by 0.1.
- Seed {recipe.seed}, {recipe.epochs} epochs, batch {recipe.batch_size}, AdamW + one-cycle, lr {recipe.learning_rate}.

## Licence
Weights derived from RAVDESS (CC BY-NC-SA 4.0) and TESS (CC BY-NC-ND 4.0): non-commercial use.

## Measured on the held-out actors (whole clips, {scores['clips']} clips)
| metric | value | chance |
|---|---|---|
| 7-class UAR | {scores['emotion_uar']:.3f} | 0.143 |
| 7-class accuracy | {scores['emotion_accuracy']:.3f} | |
| sentiment UAR | {scores['sentiment_uar']:.3f} | 0.333 |
| sentiment accuracy | {scores['sentiment_accuracy']:.3f} | |
| valence CCC (derived targets) | {scores['valence_ccc']:.3f} | 0 |
| arousal CCC (derived targets) | {scores['arousal_ccc']:.3f} | 0 |
| dominance CCC (derived targets) | {scores['dominance_ccc']:.3f} | 0 |

Confusion matrix (held-out clips):

{_confusion_table(scores['confusion'])}
This is one split (one fold), not cross-validation; leave-4-actors-out CV is the emotion
issue's evaluation.

## Reproduce
`{command}`
"""
