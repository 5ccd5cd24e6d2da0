"""The work behind `ser-pipeline train ...`: train a recipe, measure it, publish it (weights,
card, registry entry into a models folder) and calibrate registered models. Settings come in as
arguments (recipes are dataclasses); progress goes to `log`. No command-line parsing here."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ser_pipeline.files import EMBEDDED_MODELS_DIR

Log = Callable[[str], None]
_CORPUS_NAMES = {"ravdess": "RAVDESS", "tess": "TESS", "nemo": "nEMO"}
REGISTRY_NAME = "registry.json"


def registry_holding(model_id: str, models_dir: Path) -> Path:
    """The registry file whose entry for `model_id` a workflow may change: the one in
    `models_dir`. A model listed only in the project's registry is copied into it first (the
    same id there wins through `SER_REGISTRY`), so that the project's registry changes only when
    `models_dir` is the project's `models/` (`--publish`)."""
    local = models_dir / REGISTRY_NAME
    document = json.loads(local.read_text()) if local.is_file() else {"defaults": {}, "models": []}
    if any(m["id"] == model_id for m in document["models"]):
        return local
    project = json.loads((EMBEDDED_MODELS_DIR / REGISTRY_NAME).read_text())
    entries = [m for m in project["models"] if m["id"] == model_id]
    if not entries:
        raise KeyError(f"no model {model_id!r} in {local} or the project's registry")
    models_dir.mkdir(parents=True, exist_ok=True)
    document["models"].append(entries[0])
    local.write_text(json.dumps(document, indent=2) + "\n")
    return local


def train_emotion_network(recipe, model_id: str, models_dir: Path, command: str, log: Log) -> Path:
    """Train the emotion recipe (all heads, or the dims head alone) and publish it; returns the weights."""
    from ser_pipeline.schema import EMOTIONS
    from ser_pipeline.training.cards import emotion_card
    from ser_pipeline.training.emotion import train
    from ser_pipeline.training.publish import publish

    trained = train(recipe, log=log)
    network, scores = trained.network, trained.scores
    summary = {k: round(v, 4) for k, v in scores.items() if isinstance(v, float)}
    summary["orderings_held"] = f"{sum(scores['orderings'].values())}/{len(scores['orderings'])}"
    if recipe.dims_only:
        summary = {k: v for k, v in summary.items() if not k.startswith(("emotion_", "sentiment_"))}
    if "context_withheld" in scores:
        summary.update({f"{k}_context_withheld": round(v, 4) for k, v in scores["context_withheld"].items()})
    weights = publish(
        network,
        model_id=model_id,
        architecture="emotion-net-ensemble" if recipe.members > 1 else "emotion-net",
        models_dir=models_dir,
        entry={
            "tasks": ["dims"] if recipe.dims_only else ["emotion", "sentiment", "dims"],
            "input": "16 kHz mono; 64 log-mel + 20 MFCC per 10 ms frame",
            "labels": ["valence", "arousal", "dominance"] if recipe.dims_only else list(EMOTIONS),
            "licence": f"CC BY-NC-SA 4.0 (trained on {' and '.join(_CORPUS_NAMES[c] for c in recipe.corpora)};"
            " non-commercial)",
            "scores": {"held_out_actors": recipe.held_out_actors, **summary},
        },
        card_body=emotion_card(recipe, scores, command),
    )
    log(f"wrote {weights}: " + ", ".join(f"{k}={v}" for k, v in summary.items()))
    return weights


def train_whisper_emotion_head(recipe, model_id: str, models_dir: Path, command: str, device: str, log: Log) -> Path:
    """Fit the Whisper emotion head and publish it; its card states the data, split and licences
    (the measured figures are added by `ser-pipeline evaluate-clips`, under the protocol)."""
    from ser_pipeline.devices import pick_device
    from ser_pipeline.schema import EMOTIONS
    from ser_pipeline.training.publish import publish
    from ser_pipeline.training.whisper_head import train_head
    from ser_pipeline.whisper_encoder import WHEEL

    head = train_head(recipe, pick_device(device), log)
    corpora = " and ".join(_CORPUS_NAMES[c] for c in recipe.corpora)
    weights = publish(
        head,
        model_id=model_id,
        architecture="whisper-emotion-head",
        models_dir=models_dir,
        entry={
            "tasks": ["emotion", "sentiment", "dims"],
            "input": f"16 kHz mono; frozen Whisper tiny.en encoder ({WHEEL}) layer means and spreads",
            "labels": list(EMOTIONS),
            "licence": f"head: CC BY-NC-SA 4.0 (trained on {corpora}; non-commercial); encoder: MIT (OpenAI Whisper,"
            f" shipped in the {WHEEL} wheel)",
            "scores": {"held_out_actors": list(recipe.held_out_actors)},
        },
        card_body=whisper_head_card(recipe, command),
    )
    log(f"wrote {weights}")
    return weights


def whisper_head_card(recipe, command: str) -> str:
    from ser_pipeline.clip_evaluation import NEMO_FINAL_TEST
    from ser_pipeline.whisper_encoder import WHEEL

    corpora = ", ".join(_CORPUS_NAMES[c] for c in recipe.corpora)
    return f"""
A linear emotion head on the frozen Whisper tiny.en encoder: each segment is described by the mean
and standard deviation of the encoder's five layer outputs (3840 numbers); one multinomial logistic
regression reads the description standardised over the training clips (a clip alone), another
the description z-scored over the speaker's segments (speakers heard in at least
{recipe.config.min_segments} segments). In the pipeline (since 2026-12-07, `whisper_emotion`), an
utterance (not a fixed window) not read against a speaker, in a recording of at least
{recipe.config.min_segments} segments, gets the mean of the first reading and of the second applied
to its description z-scored over the whole recording: on the final-test episodes' sentences
without speakers 7-class UAR 0.593 against 0.524 alone (docs/evaluation.md; `--no-episode-reading`
reads them alone, for episodes compared on one scale). Sentiment is the sum
of the emotion probabilities; valence, arousal and dominance are the emotion probabilities through
the NRC VAD lexicon's coordinates of the seven emotions (carried in the file). Training clips are described clean and in
{recipe.noisy_copies} recording conditions (per speaker one room, gain and noise bed).

## Data and split
Trained on the development speakers of {corpora}: RAVDESS without actors
{", ".join(f"{a:02d}" for a in recipe.held_out_actors)}, TESS, nEMO without its final-test speakers
({", ".join(NEMO_FINAL_TEST)}), which no decision looked at. Logistic regression C =
{recipe.regularisation:g}, chosen on development speakers.

## Licences
The head: CC BY-NC-SA 4.0 (its training corpora are non-commercial). The encoder: OpenAI Whisper
tiny.en, MIT, read from the `{WHEEL}` wheel's CTranslate2 `model.bin` (named tensors, sha256
pinned in `ser_pipeline/whisper_encoder.py`; nothing is unpickled).

## Reproduce
`{command}`
"""


def publish_cross_validation(
    document: dict, data: Path, output: Path, calibrate: str | None, models_dir: Path, log: Log
) -> None:
    """The speaker branch on the same folds (for a speaker-context recipe the statistics alone at
    a share of 0.3, as ser-speaker-branch-v5; else as v3), the report, and the temperatures into
    the registry of `models_dir` for the model `calibrate`."""
    from ser_pipeline.training.cv_report import write_report
    from ser_pipeline.training.publish import set_options
    from ser_pipeline.training.speaker_branch import cross_validate_branch

    log("speaker branch on the same folds ...")
    context = bool(document["recipe"].get("speaker_context"))
    document["speaker_branch"] = (
        cross_validate_branch(document, data, network_inputs=False, weight=0.3)
        if context
        else cross_validate_branch(document, data)
    )
    (output / "emotion-cv.json").write_text(json.dumps(document) + "\n")
    for path in write_report(document, output):
        log(f"wrote {path}")
    if calibrate:
        temperatures = {**document["temperatures"], "fused_emotion": document["speaker_branch"]["fused_temperature"]}
        dims_calibration = document["speaker_branch"]["dims"]["calibration"]
        registry_file = registry_holding(calibrate, models_dir)
        set_options(calibrate, {"temperature": temperatures, "dims_calibration": dims_calibration}, registry_file)
        log(f"{calibrate}: temperatures {temperatures} and dims calibration {dims_calibration} in {registry_file}")


@dataclass(frozen=True)
class BranchRecipe:
    """`train speaker-branch`: the branch, what it reads, and the network it joins."""

    data: Path
    held_out_actors: tuple[int, ...]
    model_id: str
    weight: float = 0.3
    attach: str | None = "ser-crnn-v3"
    calibrate: bool = True
    cross_validation: dict | None = None  # with the network's inputs: the emotion CV document


def train_speaker_branch(recipe: BranchRecipe, models_dir: Path, command: str, log: Log) -> Path:
    """Train the speaker branch, publish it into `models_dir`, and fuse it with the attached
    network (its options, and with `calibrate` its fused temperature and dims calibrations
    fitted on the held-out actors, in `models_dir`'s registry)."""
    from ser_pipeline.files import file_sha256
    from ser_pipeline.training.publish import publish, set_options
    from ser_pipeline.training.speaker_branch import branch_card, train_branch

    network_inputs = recipe.cross_validation is not None
    branch, clips = train_branch(recipe.data, recipe.held_out_actors, recipe.cross_validation)
    options, measured = {}, None
    registry_file = registry_holding(recipe.attach, models_dir) if recipe.attach else None
    if recipe.attach and recipe.calibrate:
        options, measured = _fusion_calibration(recipe, registry_file, branch, log)
    inputs = " and the network's emotion log-probabilities" if network_inputs else ""
    weights = publish(
        branch,
        model_id=recipe.model_id,
        architecture="speaker-branch",
        models_dir=models_dir,
        entry={
            "tasks": ["emotion-branch"],
            "input": f"utterance statistics of 64 log-mel + 20 MFCC frames{inputs}, z-scored within the speaker",
            "labels": [],
            "licence": "CC BY-NC-SA 4.0 (trained on RAVDESS; non-commercial)",
            "scores": {"held_out_actors": recipe.held_out_actors, **(measured or {"see": "docs/emotion-cv.md"})},
        },
        card_body=branch_card(
            recipe.held_out_actors,
            len(clips),
            command,
            network_inputs,
            recipe.weight,
            recipe.attach or "the default",
            measured,
        ),
    )
    log(f"wrote {weights}")
    if recipe.attach:
        options["speaker_branch"] = {"model": recipe.model_id, "sha256": file_sha256(weights), "weight": recipe.weight}
        set_options(recipe.attach, options, registry_file)
        log(f"{recipe.attach}: fused with {recipe.model_id} (weight {recipe.weight}) in {registry_file}")
    return weights


def _fusion_calibration(recipe: BranchRecipe, registry_file: Path, branch, log: Log) -> tuple[dict, dict]:
    """The attached network's (listed in `registry_file`, its weights beside it or on the model
    path) temperatures and dims calibrations with `branch` fused at the recipe's weight, fitted on
    the held-out actors (registry options), and the scores measured there."""
    from ser_pipeline.registry import Registry, load_network, resolve_weights
    from ser_pipeline.training.speaker_branch import fusion_calibration

    spec = Registry.load(registry_file, extra=[]).get(recipe.attach)
    beside = registry_file.parent / spec.weights
    network = load_network(resolve_weights(spec, beside if beside.is_file() else None))
    temperatures, calibration, scores = fusion_calibration(
        recipe.data, recipe.held_out_actors, network, branch, recipe.weight
    )
    log(f"on the held-out actors: {scores}; temperatures {temperatures}, dims calibration {calibration}")
    return {"temperature": temperatures, "dims_calibration": calibration}, {
        k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()
    }


def train_laughter(recipe, model_id: str, models_dir: Path, command: str, log: Log, final_test: bool = True) -> Path:
    """Train the frame-level laughter detector, count its false alarms on speech no recipe trains
    on, evaluate it on the shared episodes (development data), publish it. Without `final_test`
    (a candidate while a recipe is chosen) neither the unheard voices' speech nor the test
    episodes are read, and the card says so."""
    from ser_pipeline.training.cards import laughter_card, laughter_licence
    from ser_pipeline.training.laughter import OPERATING_POINTS, evaluate_on_episodes, train
    from ser_pipeline.training.laughter_episodes import build_episodes, score_episodes
    from ser_pipeline.training.laughter_speech import count_false_alarms, network_detector, unheard_groups
    from ser_pipeline.training.publish import publish

    network = train(recipe, log=log)
    point = OPERATING_POINTS["balanced"]
    detector = {model_id: network_detector(network, point)}
    speech, test_episodes = [], None
    if final_test:
        speech = [c.summary([model_id]) for c in count_false_alarms(detector, unheard_groups(recipe), log=log)]
        test_episodes = score_episodes(detector, build_episodes(recipe.data), log=log)[model_id].summary()
    measures = ("precision", "recall", "f1")
    tested = {f"test_episodes_event_{k}": test_episodes["overall"][k] for k in measures} if test_episodes else {}
    scores = evaluate_on_episodes(network, recipe.data / "episodes", point)
    summary = {k: round(v, 4) for k, v in scores.items() if isinstance(v, float)}
    unheard = {
        f"false_alarms_per_hour {g['group']} {g['kind']}": [g[model_id]["per_hour"], g[model_id]["per_hour_in_noise"]]
        for g in speech
    }
    weights = publish(
        network,
        model_id=model_id,
        architecture="laughter-tcn" if recipe.members == 1 else "laughter-tcn-ensemble",
        models_dir=models_dir,
        entry={
            "tasks": ["laughter"],
            "input": "16 kHz mono; 64 log-mel per 10 ms frame",
            "labels": ["laughter"],
            "licence": laughter_licence(recipe),
            "scores": {
                "evaluated_on": "shared episodes, held-out laughers",
                **summary,
                **tested,
                **unheard,
            },
            "operating_points": {name: asdict(point) for name, point in OPERATING_POINTS.items()},
        },
        card_body=laughter_card(recipe, scores, speech, test_episodes, model_id, point, command),
    )
    log(f"wrote {weights}: " + ", ".join(f"{k}={v}" for k, v in summary.items()))
    return weights


def laughter_cross_validation(recipes: dict[str, Any], folds: int, jobs: int, settings: dict, log: Log) -> dict:
    """Leave-laughers-out check of each recipe (the first is the one asked for) on laughers
    outside the shared episodes; the document written to `laughter-cv.json`."""
    from ser_pipeline.training.laughter_cv import cross_validate_laughers, laugher_folds

    first = next(iter(recipes.values()))
    fold_list = laugher_folds(first, folds)
    negatives = "all" if first.vocalization_classes is None else sorted(first.vocalization_classes)
    document = {"folds": fold_list, **settings, "negative_classes": negatives, "results": {}}
    for name, candidate in recipes.items():
        result = cross_validate_laughers(candidate, fold_list, jobs)
        document["results"][name] = result
        log(
            f"{name}: {result['laugh_recall']:.3f} of {result['laughs']} laughs found, "
            f"{result['laughers_found_at_least_half']}/{result['laughers']} laughers found at least half the time, "
            f"{result['false_alarms_per_speech_hour']:.1f} false alarms per speech hour"
        )
        for threshold, swept in result["by_threshold"].items():
            taken = result.get("vocalizations_by_threshold", {}).get(threshold)
            unheard = (
                f", {taken:.3f} of {result['vocalizations']} unheard vocalizations taken for laughter"
                if taken is not None
                else ""
            )
            log(
                f"  threshold {threshold}: {swept['laugh_recall']:.3f} found, "
                f"{swept['false_alarms_per_speech_hour']:.1f} false alarms per speech hour{unheard}"
            )
        by_class = sorted(result.get("per_vocalization", {}).items(), key=lambda item: -item[1]["taken_for_laughter"])
        if by_class:
            counts = ", ".join(f"{name} {e['taken_for_laughter']}/{e['clips']}" for name, e in by_class)
            log(f"  taken for laughter at the default threshold: {counts}")
    return document
