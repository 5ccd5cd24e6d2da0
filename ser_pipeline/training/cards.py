"""Model-card text for the recipes' published models (data, split, licence, measured scores)."""

from __future__ import annotations

from ser_pipeline.schema import EMOTIONS


def _confusion_table(matrix: list[list[int]]) -> str:
    header = "| true \\ predicted | " + " | ".join(EMOTIONS) + " |\n|---|" + "---|" * len(EMOTIONS) + "\n"
    rows = "".join(f"| {label} | " + " | ".join(map(str, row)) + " |\n" for label, row in zip(EMOTIONS, matrix))
    return header + rows


def emotion_card(recipe, scores: dict, command: str) -> str:
    actors = ", ".join(f"{a:02d}" for a in recipe.held_out_actors)
    orderings = "".join(f"| {name} | {'holds' if held else 'FAILS'} |\n" for name, held in scores["orderings"].items())
    what = (
        "Valence/arousal/dominance (0..1) alone: the same network as ser-crnn-v1 trained with the\n"
        "dimensional loss only (its emotion and sentiment heads are untrained and unused). Network:"
        if recipe.dims_only
        else "Emotion (7 classes), sentiment (3 classes) and valence/arousal/dominance (0..1) from one\nnetwork"
        + (f" (an ensemble of {recipe.members}, below):" if recipe.members > 1 else ":")
    )
    context = (
        "\n\nSpeaker context: the heads also read how the utterance departs from the mean of its\n"
        "speaker's other utterances in the episode (leave-one-out), in the pooled embedding and in its\n"
        "level (the mean features of its louder half of frames, the median and 90th percentile of\n"
        "frame log-energy), which per-utterance normalisation removes. Speakers heard in fewer than\n"
        f"{recipe.network.context_min_segments} segments, and unnamed ones, get none (zeros). Training batches hold groups of up to\n"
        "8 crops of one speaker under one recording condition (gain, and background noise in\n"
        f"{recipe.noise_share:.0%} of the groups), read against each other; one group in five goes without its context."
        if recipe.network.speaker_context
        else ""
    )
    ensemble = (
        f"\n\nAn ensemble of {recipe.members} such networks, trained alike with seeds {recipe.seed} to"
        f" {recipe.seed + recipe.members - 1}; their probabilities and dims are averaged."
        if recipe.members > 1
        else ""
    )
    withheld = scores.get("context_withheld")
    calibration = (
        """This is one split (one fold), dims as the network gives them. `train speaker-branch` fits the
pipeline's calibration of this network on the same held-out clips (temperatures for the
probabilities; a scale and shift per dimension that gives the dims the targets' mean and
spread, for the network alone and fused with the branch) and puts it in the registry entry,
with the branch's scores there (`ser-speaker-branch-v5` card). Leave-4-actors-out figures of
this recipe (one network per fold): `docs/evaluation.md`, "Speaker normalisation after the
network"."""
        if recipe.network.speaker_context
        else """This is one split (one fold), dims as the network gives them. The recipe's leave-4-actors-out
cross-validation (every actor held out once), the calibration fitted there (temperatures for
the probabilities; a scale and shift per dimension that gives the dims the targets' mean and
spread), which `train emotion-cv --calibrate ID` puts in a model's registry entry for the
pipeline to apply, and the speaker branch fused with the network are in `docs/emotion-cv.md`."""
    )
    with_nemo = "nemo" in getattr(recipe, "corpora", ())
    nemo = (
        ",\n  and nEMO's development speakers (MK0, MP0, SM0, TP0; Polish, Ogg Opus; its final-test speakers\n"
        "  EB0, IC0, KD0, KS0, WR0 are never read)"
        if with_nemo
        else ""
    )
    nemo_licence = " and nEMO (CC BY-NC-SA 4.0)" if with_nemo else ""
    withheld_rows = (
        f"| 7-class UAR, speaker context withheld | {withheld['emotion_uar']:.3f} | 0.143 |\n"
        f"| sentiment UAR, speaker context withheld | {withheld['sentiment_uar']:.3f} | 0.333 |\n"
        if withheld
        else ""
    )
    return f"""
{what} fused log-mel (64) + MFCC (20) frames at 100 per second, per-utterance mean/variance
normalisation, three masked 1-D conv blocks, a BiLSTM and attention pooling, three heads.{context}{ensemble}

## Data and split
- Training: RAVDESS speech actors 01-20 except the held-out ones, and TESS (both speakers){nemo},
  from `../shared/data` (16 kHz mono). RAVDESS calm counts as neutral, TESS "ps" as surprise.
- Held out (never seen in training): RAVDESS actors {actors}: every RAVDESS voice that appears
  in `../shared/data/episodes`, so episode-level checks are speaker-independent as well.
- Augmentation: random crops of {recipe.min_crop_s}-{recipe.max_crop_s} s of the voiced part (the whole clip
  {recipe.whole_clip_share:.0%} of the time), level changes of +-6 dB, background noise (white, pink or brown)
  at an absolute RMS of 2e-4 to 8e-3 in {recipe.noise_share:.0%} of the crops (quiet voices end up at a low
  SNR, as in real rooms), SpecAugment (two frequency masks, one time mask); epochs hold every
  RAVDESS clip and as many of each other corpus's; class-weighted cross-entropy.
- Dimensional targets are derived, not human ratings (no corpus with dimensional labels is
  available here): each class's NRC VAD lexicon coordinates (`lexicon/emotion_vad.csv`;
  RAVDESS calm uses "calm"), RAVDESS strong intensity raising arousal by 0.1 and normal
  intensity lowering it by 0.1; arousal is then blended ({recipe.acoustic_arousal_weight:.0%}) with the clip's
  own acoustic evidence: loudness, median pitch and pitch range of its voiced frames, z-scored
  within the speaker, averaged and squashed by a logistic. Valence and dominance stay class
  coordinates, so within a class they carry no information beyond the class: treat them as
  "how much this sounds like a positive / dominant emotion".
- Seed {recipe.seed}, {recipe.epochs} epochs, batch {recipe.batch_size}, AdamW + one-cycle, lr {recipe.learning_rate}.

## Licence
Weights derived from RAVDESS (CC BY-NC-SA 4.0) and TESS (CC BY-NC-ND 4.0){nemo_licence}: non-commercial use.

## Measured on the held-out actors ({scores["clips"]} clips, voiced part as the pipeline scores it{", each speaker's clips as its context" if withheld else ""})
| metric | value | chance |
|---|---|---|
| 7-class UAR | {scores["emotion_uar"]:.3f} | 0.143 |
| 7-class accuracy | {scores["emotion_accuracy"]:.3f} | |
| sentiment UAR | {scores["sentiment_uar"]:.3f} | 0.333 |
| sentiment accuracy | {scores["sentiment_accuracy"]:.3f} | |
| valence CCC (derived targets) | {scores["valence_ccc"]:.3f} | 0 |
| arousal CCC (derived targets) | {scores["arousal_ccc"]:.3f} | 0 |
| dominance CCC (derived targets) | {scores["dominance_ccc"]:.3f} | 0 |
{withheld_rows}
Orderings of class means on the held-out clips:

| ordering | |
|---|---|
{orderings}
Confusion matrix (held-out clips):

{_confusion_table(scores["confusion"])}
{calibration}

## Measured in context
`docs/evaluation.md`: the same speakers' sentences inside the shared episodes (44.1 kHz MP3,
trimmed, light noise) against their clean source clips; and the held-out clips in rooms the
recipe never simulates (`scripts/room_check.py`, "Rooms"): there the shipped default (ser-crnn-v2
with its speaker branch) fell from UAR 0.76 to 0.66.

## Reproduce
`{command}`
"""


_SPEECH_NAMES = {"ravdess": "RAVDESS", "tess": "TESS", "nemo": "nEMO (its development speakers)"}
_SPEECH_LICENCES = {
    "ravdess": "RAVDESS (CC BY-NC-SA 4.0)",
    "tess": "TESS (CC BY-NC-ND 4.0)",
    "nemo": "nEMO (CC BY-NC-SA 4.0)",
}


def laughter_licence(recipe) -> str:
    sources = ", ".join(_SPEECH_LICENCES[c] for c in recipe.speech_corpora)
    return f"non-commercial: trained on the Deeply Nonverbal Vocalization sample set (CC BY-NC-ND 4.0), {sources}"


def _speech_table(speech: list[dict], model_id: str) -> str:
    rows = "".join(
        f"| {g['group']} | {g['kind']} | {g['speakers']} | {g['hours']:.2f} | {g[model_id]['per_hour']:.1f}"
        f" ({g[model_id]['interval'][0]:.1f}-{g[model_id]['interval'][1]:.1f}) | {g[model_id]['per_hour_in_noise']:.1f}"
        f" ({g[model_id]['interval_in_noise'][0]:.1f}-{g[model_id]['interval_in_noise'][1]:.1f}) |\n"
        for g in speech
    )
    return (
        "| speech without laughter | kind | speakers | hours | false alarms / h (95% over speakers) | in the episodes'"
        " noise |\n|---|---|---|---|---|---|\n" + rows
    )


def _test_episodes_table(test_episodes: dict) -> str:
    rows = "".join(
        f"| {name} | {t['found']} / {t['laughs']} | {t['false_alarms']} |\n"
        for name, t in test_episodes.items()
        if not name.startswith("laugher ")
    )
    overall = test_episodes["overall"]
    return (
        f"Event precision {overall['precision']:.3f}, recall {overall['recall']:.3f}, F1 {overall['f1']:.3f}"
        f" (IoU >= 0.3), {overall['false_alarms_per_hour']} false alarms per hour.\n\n"
        "| episodes or laughs | laughs found | false alarms |\n|---|---|---|\n" + rows
    )


_CROSS_LANGUAGE = """Cross-language: the same recipe with English hard negatives only fired on these Polish speakers'
expressive speech about as often as the recipe without any (57.8 against 65.1 an hour), while on
the English it trained on it fell tenfold (`docs/evaluation.md`): hard negatives hold in their own
language, so expect many more false alarms in a language the recipe never heard."""
_CROSS_LANGUAGE_SHUFFLED = """Cross-language (`docs/evaluation.md`): English hard negatives alone, as recorded, leave these Polish
speakers' expressive speech at 55.2 false alarms an hour (the recipe without any: 65.1); with most of
that speech also shuffled into no language, at 10.6 (paired -65.4 to -25.2 over speakers), calm
speech 31.2 -> 13.7. Shuffled speech carries to a language the recipe never heard where speech as
recorded does not; expect more false alarms there than in English or Polish all the same."""


_NO_FINAL_TEST = """## Final test: not measured
Trained with `--no-final-test`: a candidate while a recipe is chosen, judged on development data
only. Once the recipe is chosen, `ser-pipeline train laughter-speech --model {model_id}` and
`train laughter-episodes --model {model_id}` measure it on the final test.

"""


def _final_test_sections(recipe, speech: list[dict], test_episodes: dict, model_id: str, point) -> str:
    return f"""## False alarms on voices no recipe trained on (operating point `balanced`)
Operating point: threshold {point.threshold}, smoothing {point.smooth_s} s, minimum length
{point.min_duration_s} s, merge gap {point.merge_gap_s} s. Each speaker's laughter-free clips strung
together with short gaps, as recorded and with white noise at the shared episodes' level under
them (`ser-pipeline train laughter-speech`; expressive: angry, happy, fearful, surprised; calm:
the rest). nEMO's final-test speakers are Polish, a language{" the recipe's speech includes only from other speakers" if "nemo" in recipe.speech_corpora else " the recipe never heard"}.

{_speech_table(speech, model_id)}
{_CROSS_LANGUAGE_SHUFFLED if recipe.shuffle_share else _CROSS_LANGUAGE}
## Test episodes from a new generator
`ser-pipeline train laughter-episodes` (`ser_pipeline/training/laughter_episodes.py`): 16
episodes of 3 minutes, two unheard voices each (nEMO's final-test speakers, the held-out RAVDESS
actors) in every emotion, laughs of the six held-out laughers only 2-6 dB above the sentence they
follow (half of them over its end), music beds, synthetic rooms, five kinds of noise.

{_test_episodes_table(test_episodes)}
There is no final test of laughs by unheard laughers beyond these six: every laugher in
`../shared/data` has been looked at. The leave-laughers-out check (`ser-pipeline train
laughter-cv`, development figures) is in `docs/evaluation.md`.

"""


def laughter_card(
    recipe, scores: dict, speech: list[dict], test_episodes: dict | None, model_id: str, point, command: str
) -> str:
    """The model card's body; `test_episodes` None: trained without the final test (no unheard
    voices' speech read either), which the card says in place of those sections."""
    from ser_pipeline.training.data import nonverbal_clips
    from ser_pipeline.training.laughter import other_vocalizations

    held_out = ", ".join(recipe.held_out_laughers)
    episodes = "".join(
        f"| {name} | {v['laughs_per_10min_truth']} | {v['laughs_per_10min_detected']} |\n"
        for name, v in scores["per_episode"].items()
    )
    ensemble = (
        f"\n\nAn ensemble of {recipe.members} such networks, trained alike with seeds {recipe.seed}"
        f" {'and' if recipe.members == 2 else 'to'} {recipe.seed + recipe.members - 1} (each its own scenes and"
        " initial weights); their logits are averaged."
        if recipe.members > 1
        else ""
    )
    sharpened = (
        f" {recipe.sharpen_share:.0%} of the placed clips (laughter, vocalizations and speech alike) have their"
        f" magnitude spectrum raised to a power of 1-{recipe.sharpen_power} (harmonics over breath: a voiced,"
        " song-like laugh or a clear voice)."
        if recipe.sharpen_share
        else ""
    )
    rooms = (
        f" {recipe.room_share:.0%} of the scenes' placed clips sound in a synthetic room (a decaying noise tail,"
        " RT60 0.15-0.8 s) before the noise."
        if recipe.room_share
        else ""
    ) + (
        f" {recipe.overlap_share:.0%} of the laughs start 0.2-0.8 s before the clip placed before them ends"
        " (laughing over the end of a sentence)."
        if recipe.overlap_share
        else ""
    )
    unlike_any_language = (
        f" {recipe.shuffle_share:.0%} of the placed speech is cut into pieces of 0.1-0.35 s (about a syllable)"
        " put in a random order: the corpora's voices in no language, hard negatives beyond their languages."
        if recipe.shuffle_share
        else ""
    )
    low, high = recipe.bandlimit_hz
    band_limited = (
        f" {recipe.bandlimit_share:.0%} of the placed clips are low-passed at {low:.0f}-{high:.0f} Hz before the"
        " scene's noise (a narrow-band voice in a broadband room)."
        if recipe.bandlimit_share
        else ""
    )
    classes, known = recipe.vocalization_classes, other_vocalizations(nonverbal_clips(recipe.data))
    negatives = (
        f"the {len(known)} other vocalization classes"
        if classes is None
        else f"{len(classes)} of the {len(known)} other vocalization classes ({', '.join(sorted(classes))}; not"
        f" {', '.join(sorted(known - set(classes)))}: as negatives they cost unheard laughers' laughs, and a podcast"
        " seldom holds them, see `docs/evaluation.md`)"
    )
    speech_corpora = ", ".join(_SPEECH_NAMES[c] for c in recipe.speech_corpora)
    held_out_actors = (
        f" (not RAVDESS actors {', '.join(map(str, recipe.held_out_actors))}: their speech measures false alarms on"
        " unheard voices)"
        if recipe.held_out_actors
        else ""
    )
    expressive = (
        f"placed speech is drawn {recipe.expressive_share:.0%} of the time from its angry, happy, fearful and surprised"
        " clips (hard negatives: the speech a laughter detector takes for laughter most often)"
        if recipe.expressive_share
        else "placed speech is drawn from all of it alike"
    )
    window = recipe.network.pcen_half_window
    inputs = (
        f"the per-channel energy normalisation (PCEN) of 64-bin log-mel frames at 100 per second (each band's power"
        f" against its mean over {window / 100:.2f} s each side, so a steady noise floor looks alike at any level)"
        if window
        else "64-bin log-mel frames at 100 per second"
    )
    final_test = (
        _final_test_sections(recipe, speech, test_episodes, model_id, point)
        if test_episodes is not None
        else _NO_FINAL_TEST.format(model_id=model_id)
    )
    return f"""
Frame-level laughter detector: a dilated temporal CNN (residual, dilations
{recipe.network.dilations} at a stride of {recipe.network.stride} frames) over {inputs},
with fixed input normalisation learnt in training; {recipe.network.receptive_frames / 100:.2f} s of context
on each side of a frame. One pass scores every frame of an episode.{ensemble}

{final_test}## Data and split
- Positives: `../shared/data/nonverbal/laughing`, except the held-out laughers ({held_out}):
  every laugher heard in `../shared/data/episodes`, so the episode scores below are on laughers
  the model never heard.
- Negatives: {negatives} of `nonverbal/`, placed
  {recipe.vocalization_share:.0%} of the time (without the held-out laughers' other vocalizations: evaluation is by
  person), and {recipe.speech_clips} speech clips, as many from each of {speech_corpora}{held_out_actors};
  {expressive}.
- Scenes of {recipe.scene_s} s built on the fly: clips one after another with 0.1-1.2 s gaps,
  each at its own level (-34 to -14 dBFS RMS) and speed ({recipe.speed_range[0]}-{recipe.speed_range[1]}x, pitch and tempo
  together), over white, pink or brown noise (-65 to -40 dBFS), the whole scene through a
  random spectral tilt (darker, thinner or as is); laughter drawn {recipe.laughter_share:.0%} of the time, cut to
  a 0.6-3 s excerpt {recipe.laugh_excerpt_share:.0%} of those and joined by a second laugh drawn from the
  pool (two people laughing at once, -9 to 0 dB relative) {recipe.together_share:.0%} of those. {recipe.band_shift_share:.0%} of the
  scenes' log-mel frames move up or down by up to {recipe.band_shift} mel bands (a higher or lower voice, laughter
  and speech alike).{sharpened}{band_limited}{rooms}{unlike_any_language} {recipe.epochs} epochs x {recipe.scenes_per_epoch} scenes{" per network" if recipe.members > 1 else f", seed {recipe.seed}"}.

## Licence
Weights derived from the Deeply Nonverbal Vocalization sample set (CC BY-NC-ND 4.0), {", ".join(_SPEECH_LICENCES[c] for c in recipe.speech_corpora)}: non-commercial use.

## Development data: `../shared/data/episodes`
Their six laughers are held out of training, but recipes were chosen on these episodes.

| metric | value |
|---|---|
| event precision (IoU >= 0.3, one to one) | {scores["laughter_event_precision"]:.3f} |
| event recall | {scores["laughter_event_recall"]:.3f} |
| event F1 | {scores["laughter_event_f1"]:.3f} |
| frame F1 | {scores["laughter_frame_f1"]:.3f} |
| true events | {scores["true_laughs"]} |

| episode | laughs / 10 min (truth) | laughs / 10 min (detected) |
|---|---|---|
{episodes}
The comparison with the Switchboard ResNet: `docs/evaluation.md`.

## Reproduce
`{command}`
"""
