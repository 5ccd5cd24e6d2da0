"""The `ser-pipeline` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Emotion, valence/arousal/dominance and laughter analytics for podcast archives.", no_args_is_help=True)
train_app = typer.Typer(help="Training recipes for the embedded default models.", no_args_is_help=True)
app.add_typer(train_app, name="train")

DataOption = Annotated[Path | None, typer.Option(help="Shared data folder (default: $SER_SHARED_DATA or ../shared/data).")]
ModelsDirOption = Annotated[Path, typer.Option(help="Where to write weights, model card and registry entry.")]


def _models_dir_default() -> Path:
    from ser_pipeline.registry import EMBEDDED_MODELS_DIR

    return EMBEDDED_MODELS_DIR


@train_app.command("emotion")
def train_emotion(
    data: DataOption = None,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 30,
    seed: int = 0,
    held_out: Annotated[str, typer.Option(help="Comma-separated RAVDESS actors kept out of training.")] = "1,2,5,8,11",
    models_dir: ModelsDirOption = _models_dir_default(),
    model_id: str = "ser-crnn-v1",
) -> None:
    """Train the emotion + sentiment + valence/arousal/dominance network and publish it."""
    from ser_pipeline.training.cards import emotion_card
    from ser_pipeline.training.data import shared_data_dir
    from ser_pipeline.training.emotion import EmotionRecipe, train
    from ser_pipeline.training.publish import publish
    from ser_pipeline.schema import EMOTIONS

    recipe = EmotionRecipe(
        data=data or shared_data_dir(),
        epochs=epochs,
        seed=seed,
        held_out_actors=tuple(int(a) for a in held_out.split(",") if a),
    )
    network, scores = train(recipe, log=typer.echo)
    summary = {k: round(v, 4) for k, v in scores.items() if isinstance(v, float)}
    command = f"ser-pipeline train emotion --epochs {epochs} --seed {seed} --held-out {held_out}"
    weights = publish(
        network,
        model_id=model_id,
        architecture="emotion-net",
        models_dir=models_dir,
        entry={
            "tasks": ["emotion", "sentiment", "dims"],
            "input": "16 kHz mono; 64 log-mel + 20 MFCC per 10 ms frame",
            "labels": list(EMOTIONS),
            "licence": "CC BY-NC-SA 4.0 (trained on RAVDESS and TESS; non-commercial)",
            "scores": {"held_out_actors": recipe.held_out_actors, **summary},
        },
        card_body=emotion_card(recipe, scores, command),
    )
    typer.echo(f"wrote {weights}: " + ", ".join(f"{k}={v}" for k, v in summary.items()))


def main() -> None:
    app()
