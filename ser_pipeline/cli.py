"""The `ser-pipeline` command line."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Emotion, valence/arousal/dominance and laughter analytics for podcast archives.", no_args_is_help=True
)
train_app = typer.Typer(help="Training recipes for the embedded default models.", no_args_is_help=True)
app.add_typer(train_app, name="train")

EmotionModelOption = Annotated[
    str | None,
    typer.Option(
        help="Registry id of the emotion/sentiment model, e.g. a Hugging Face classifier (default: the registry's)."
    ),
]
DimsModelOption = Annotated[
    str | None, typer.Option(help="Registry id of the valence/arousal/dominance model (default: the registry's).")
]
LaughterModelOption = Annotated[
    str | None, typer.Option(help="Registry id of the laughter detector (default: the registry's).")
]
OperatingPointOption = Annotated[
    str, typer.Option(help="The laughter detector's named operating point (see `ser-pipeline models`).")
]
EXIT_EPISODES_FAILED, EXIT_NOTHING_RAN = 1, 3  # 2: a bad option or argument (typer's usage errors)

WarehouseOption = Annotated[Path, typer.Option(help="Warehouse folder (Parquet files and podcasts.duckdb).")]
DataOption = Annotated[
    Path | None, typer.Option(help="Shared data folder (default: $SER_SHARED_DATA or ../shared/data).")
]
ModelsDirOption = Annotated[Path, typer.Option(help="Where to write weights, model card and registry entry.")]
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


# The options of the `train laughter*` commands that are LaughterRecipe fields as they are.
_RECIPE_OPTIONS = ("epochs", "seed", "members", "sharpen_share", "bandlimit_share", "vocalization_share")


def _laughter_recipe(params: dict):
    """The laughter recipe of a `train laughter*` command, from its parsed options (`ctx.params`)."""
    from dataclasses import replace

    from ser_pipeline.training.data import nonverbal_clips, shared_data_dir
    from ser_pipeline.training.laughter import LaughterRecipe
    from ser_pipeline.training.laughter import negative_classes as chosen_classes

    options = {name: params[name] for name in _RECIPE_OPTIONS}
    options["network"] = replace(LaughterRecipe.network, pcen_half_window=params["pcen_window"])
    if (negative_classes := params["negative_classes"]) is not None:
        options["vocalization_classes"] = None if negative_classes == "all" else tuple(negative_classes.split(","))
    recipe = LaughterRecipe(data=params["data"] or shared_data_dir(), **options)
    try:
        chosen_classes(recipe, nonverbal_clips(recipe.data))
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--negative-classes") from None
    return recipe


def _models_dir_default() -> Path:
    from ser_pipeline.files import EMBEDDED_MODELS_DIR  # not the registry: it imports torch

    return EMBEDDED_MODELS_DIR


@app.command()
def run(
    archive: Annotated[str, typer.Argument(help="Folder of show folders, one show folder, or an http(s) feed URL.")],
    warehouse: WarehouseOption = Path("warehouse/data"),
    segmentation: Annotated[
        str, typer.Option(help="sentence (transcript, else voice activity) | window | vad.")
    ] = "sentence",
    window: Annotated[float, typer.Option(help="Window length in seconds (--segmentation window).")] = 3.0,
    hop: Annotated[float | None, typer.Option(help="Window hop in seconds (default: the window length).")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    reports: Annotated[
        Path | None, typer.Option(help="Report folder (default: reports/ beside the warehouse).")
    ] = None,
    report_window: Annotated[float, typer.Option(help="Rolling-mean window of the report charts, seconds.")] = 60.0,
    emotion_model: EmotionModelOption = None,
    dims_model: DimsModelOption = None,
    laughter_model: LaughterModelOption = None,
    operating_point: OperatingPointOption = "balanced",
    reprocess: Annotated[
        bool, typer.Option(help="Redo episodes whose audio, transcript, models and settings are unchanged.")
    ] = False,
    task_runner: Annotated[
        str, typer.Option(help="default (episodes one by one here) | dask (fanned out over a Dask cluster).")
    ] = "default",
    dask_address: Annotated[
        str | None, typer.Option(help="Scheduler of an existing Dask cluster, tcp://host:8786 (default: a local one).")
    ] = None,
    diarization: Annotated[
        str | None,
        typer.Option(
            help="pyannote.audio pipeline that labels speakers of segments whose transcript names none, pinned:"
            " HUB_ID@<commit> (HF_TOKEN for gated ones) or DIR@sha256:<hash of its files>."
        ),
    ] = None,
    allow_private_feeds: Annotated[
        bool,
        typer.Option(
            help="Let a feed URL and its enclosures be on loopback or private addresses (your own network);"
            " refused by default."
        ),
    ] = False,
) -> None:
    """Analyze every episode of ARCHIVE with the Prefect flow `analyze-archive`.

    Episodes unchanged since their recorded run are skipped. Exit codes: 0 every episode ok or
    skipped; 1 some episodes failed (each is recorded in the `episodes` table with its error,
    the others are complete); 2 a bad option or argument; 3 the run itself could not go on
    (no Prefect server, an unreadable archive).
    """
    _check_segmentation(segmentation)
    archive = _archive_argument(archive, "ARCHIVE")
    _check_models(emotion_model, dims_model, laughter_model, operating_point)
    if task_runner not in ("default", "dask"):
        raise typer.BadParameter(f"{task_runner!r}: choose default or dask", param_hint="--task-runner")
    began = time.perf_counter()
    if not reprocess and (
        episodes := _unchanged_archive(
            archive,
            warehouse,
            segmentation,
            window,
            hop,
            reports,
            emotion_model,
            dims_model,
            laughter_model,
            operating_point,
            diarization,
        )
    ):
        outcomes = [{"status": "skipped", "duration_s": 0.0} for _ in range(episodes)]
        _print_run_summary(outcomes, time.perf_counter() - began, warehouse)
        typer.echo("nothing changed since the recorded runs: no flow run started (--reprocess redoes them)")
        raise typer.Exit(0)
    from ser_pipeline.prefect_api import PrefectServerError, prefect_api

    with _exit_on(PrefectServerError), prefect_api(load=lambda: __import__("flows.analyze_archive")):
        from flows.analyze_archive import EpisodesFailed, analyze_archive

        state = analyze_archive(
            archive=archive,
            warehouse=str(warehouse),
            segmentation=segmentation,
            window_s=window,
            hop_s=hop,
            device=device,
            reports=str(reports) if reports else None,
            report_window_s=report_window,
            emotion_model=emotion_model,
            dims_model=dims_model,
            laughter_model=laughter_model,
            operating_point=operating_point,
            reprocess=reprocess,
            task_runner=task_runner,
            dask_address=dask_address,
            diarization=diarization,
            allow_private_feeds=allow_private_feeds,
            return_state=True,
        )
        result = state.result(raise_on_failure=False)
    if isinstance(result, EpisodesFailed):
        outcomes = result.outcomes
    elif isinstance(result, BaseException):
        typer.echo(f"error: the run could not go on: {type(result).__name__}: {result}", err=True)
        raise typer.Exit(EXIT_NOTHING_RAN)
    else:
        outcomes = result
    failed = [o for o in outcomes if o["status"] == "failed"]
    _print_run_summary(outcomes, time.perf_counter() - began, warehouse)
    for outcome in failed:
        typer.echo(f"failed: {outcome['show']}/{outcome['episode_id']}: {outcome['error']}", err=True)
    raise typer.Exit(EXIT_EPISODES_FAILED if failed else 0)


@app.command()
def serve(
    archive: Annotated[
        str, typer.Option(help="The archive folder or http(s) feed URL the nightly run analyzes (a default parameter).")
    ],
    warehouse: WarehouseOption = Path("warehouse/data"),
    cron: Annotated[str, typer.Option(help="When to run, as a cron expression (server time zone: UTC).")] = "0 3 * * *",
    segmentation: Annotated[str, typer.Option(help="sentence | window | vad (a default parameter).")] = "sentence",
    window: Annotated[float, typer.Option(help="Window length in seconds (--segmentation window).")] = 3.0,
    hop: Annotated[float | None, typer.Option(help="Window hop in seconds (default: the window length).")] = None,
    reports: Annotated[
        Path | None, typer.Option(help="Report folder (default: reports/ beside the warehouse).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
) -> None:
    """Register the Prefect deployment `analyze-archive/nightly` on the server at PREFECT_API_URL
    and serve it: scheduled runs, and `prefect deployment run analyze-archive/nightly` (with
    `--param archive=...` etc. to override these defaults), run here until interrupted."""
    import os

    _check_segmentation(segmentation)
    archive = _archive_argument(archive, "--archive")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        typer.echo(
            "error: serving needs a Prefect server that outlives this command. Start one with\n"
            "  prefect server start            (SQLite under PREFECT_HOME; PostgreSQL for production)\n"
            "then  export PREFECT_API_URL=http://127.0.0.1:4200/api  and run this again.",
            err=True,
        )
        raise typer.Exit(2)
    from flows.analyze_archive import analyze_archive

    parameters = {
        "archive": archive,
        "warehouse": str(warehouse.resolve()),
        "segmentation": segmentation,
        "window_s": window,
        "hop_s": hop,
        "reports": str(reports.resolve()) if reports else None,
        "device": device,
    }
    typer.echo(f"serving analyze-archive/nightly on {PREFECT_API_URL.value()} ({cron}); Ctrl-C stops", err=True)
    analyze_archive.serve(name="nightly", cron=cron, parameters=parameters, pause_on_shutdown=False)


def _unchanged_archive(
    archive: str,
    warehouse: Path,
    segmentation: str,
    window: float,
    hop: float | None,
    reports: Path | None,
    emotion_model: str | None,
    dims_model: str | None,
    laughter_model: str | None,
    operating_point: str,
    diarization: str | None,
) -> int:
    """How many episodes a local archive has when every one of them is unchanged since its
    recorded rows and the views and reports exist (0 otherwise, or when in doubt), read without
    torch, models or Prefect: an unchanged nightly run then costs about a second."""
    from ser_pipeline.archive import discover
    from ser_pipeline.fingerprints import RunConfig, unchanged
    from ser_pipeline.registry import Registry, models_fingerprint
    from ser_pipeline.remote import is_remote
    from ser_pipeline.segmentation import Segmentation
    from ser_pipeline.warehouse import outputs_exist, reports_dir

    if is_remote(archive) or not outputs_exist(warehouse, reports_dir(warehouse, reports)):
        return 0
    try:
        registry = Registry.load()
        models = models_fingerprint(
            registry.choose("emotion", emotion_model),
            registry.choose("dims", dims_model),
            registry.choose("laughter", laughter_model),
            operating_point,
            diarization,
        )
        config = RunConfig(warehouse, Segmentation(segmentation), window, hop)
        episodes = discover(Path(archive))
        return len(episodes) if all(unchanged(e, config, models) for e in episodes) else 0
    except Exception:  # noqa: BLE001 - in doubt, the flow runs and reports any problem itself
        return 0


def _check_segmentation(segmentation: str) -> None:
    from ser_pipeline.segmentation import Segmentation

    if segmentation not in Segmentation.__members__:
        raise typer.BadParameter(f"{segmentation!r}: choose sentence, window or vad", param_hint="--segmentation")


@contextmanager
def _exit_on(*errors: type[BaseException]):
    """These errors end the command with their message and EXIT_NOTHING_RAN, not a traceback."""
    try:
        yield
    except errors as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_NOTHING_RAN) from None


@contextmanager
def _model_problems_exit():
    """An unknown model id, a model asked to do what it does not, a bad operating point or
    missing weights end the command with the message (exit 2), not a traceback."""
    from ser_pipeline.registry import ModelNotFoundError

    try:
        yield
    except (KeyError, ValueError, ModelNotFoundError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(2) from None


def _check_models(emotion: str | None, dims: str | None, laughter: str | None, operating_point: str) -> None:
    """The models of a run exist in the registry, do their task, and the operating point is the
    laughter model's: checked before any flow starts (no torch needed)."""
    from ser_pipeline.registry import Registry

    with _model_problems_exit():
        registry = Registry.load()
        registry.choose("emotion", emotion)
        registry.choose("dims", dims)
        spec = registry.choose("laughter", laughter)
        if operating_point not in spec.operating_points:
            known = ", ".join(spec.operating_points) or "none"
            raise ValueError(f"model {spec.id} has no operating point {operating_point!r} (known: {known})")


def _archive_argument(archive: str, hint: str) -> str:
    """A feed URL as given, or a folder made absolute; anything else is a usage error."""
    from ser_pipeline.remote import is_remote

    if is_remote(archive):
        return archive
    if "://" in archive:
        raise typer.BadParameter(f"{archive!r}: only http(s) feed URLs or folders", param_hint=hint)
    if not Path(archive).is_dir():
        raise typer.BadParameter(f"{archive} is not a folder", param_hint=hint)
    return str(Path(archive).resolve())


def _print_run_summary(outcomes: list[dict], seconds: float, warehouse: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    audio_s = sum(o["duration_s"] for o in outcomes if o["status"] != "skipped")  # audio analyzed now
    table = Table(
        "episodes", "ok", "failed", "skipped", "hours of audio", "time taken", "x real time", title="run summary"
    )
    statuses = [o["status"] for o in outcomes]
    table.add_row(
        str(len(outcomes)),
        str(statuses.count("ok")),
        str(statuses.count("failed")),
        str(statuses.count("skipped")),
        f"{audio_s / 3600:.2f}",
        f"{seconds:.1f} s",
        f"{audio_s / max(seconds, 1e-9):.0f}",
    )
    Console().print(table)
    if older := sum(o.get("older_code", False) for o in outcomes):
        typer.echo(f"{older} episode(s) scored again: their rows were scored by older scoring code")
    typer.echo(f"warehouse: {warehouse} (query with `ser-pipeline query`)")


@app.command()
def predict(
    files: Annotated[list[Path], typer.Argument(help="Audio files; each whole file is one segment.")],
    output: Annotated[str, typer.Option("--output", "-o", help="CSV file to write; - for standard output.")],
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    emotion_model: EmotionModelOption = None,
    dims_model: DimsModelOption = None,
    laughter_model: LaughterModelOption = None,
) -> None:
    """Clip-level predictions: one CSV row per file (`file` exactly as given). A file that cannot
    be read or scored gets a row with the reason in `error` and empty scores; the others are
    scored. Exits 1 when any file failed."""
    import csv
    import sys

    from ser_pipeline.inference import Analyzer
    from ser_pipeline.schema import PREDICTION_COLUMNS, SCORE_COLUMNS

    with _model_problems_exit():
        analyzer = Analyzer(
            device=device, emotion_model=emotion_model, dims_model=dims_model, laughter_model=laughter_model
        )
    rows, failed = [], 0
    for file in files:
        try:
            if not file.is_file():
                raise FileNotFoundError("no such file")
            scores = analyzer.analyze_file(file)
        except Exception as error:  # noqa: BLE001 - one bad file costs its row, not the batch
            failed += 1
            reason = " ".join(str(error).split()) or type(error).__name__
            rows.append({"file": str(file), "error": reason})
            typer.echo(f"failed: {file}: {reason}", err=True)
            continue
        rows.append({"file": str(file), **{c: scores.columns[c][0] for c in SCORE_COLUMNS}, "error": None})
    handle = sys.stdout if output == "-" else open(output, "w", newline="")  # noqa: SIM115 - closed below
    try:
        writer = csv.DictWriter(handle, fieldnames=PREDICTION_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    finally:
        if handle is not sys.stdout:
            handle.close()
    typer.echo(f"wrote {len(rows)} row(s) to {'standard output' if output == '-' else output}", err=True)
    raise typer.Exit(1 if failed else 0)


@app.command()
def query(
    sql: Annotated[
        str, typer.Argument(help="SQL over the views episodes, segments, laughter_events, episode_summary, ...")
    ],
    warehouse: WarehouseOption = Path("warehouse/data"),
) -> None:
    """Run SQL on the warehouse and print each result as a table. Only SELECT statements run
    (WITH, FROM, DESCRIBE, SHOW and SUMMARIZE included), on a connection that reads nothing but
    the warehouse: no other files, no network, no writes."""
    import duckdb
    from rich.console import Console
    from rich.table import Table

    from ser_pipeline.query import QueryRefused, run_query
    from ser_pipeline.warehouse import WarehouseBusy

    try:
        results = run_query(warehouse, sql)
    except (QueryRefused, WarehouseBusy, duckdb.Error, FileNotFoundError) as error:
        typer.echo(f"error: {' '.join(str(error).split())}", err=True)
        raise typer.Exit(2) from None
    for result in results:
        table = Table(*result.columns)
        for row in result.rows:
            table.add_row(*("" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
        Console().print(table)


@app.command()
def models() -> None:
    """List the model registry: id, tasks, source, licence, measured scores."""
    from rich.console import Console
    from rich.table import Table

    from ser_pipeline.registry import Registry

    registry = Registry.load()
    table = Table("id", "tasks", "source", "licence", "measured", "default for")
    for spec in registry.models.values():
        scores = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in spec.scores.items())
        source = spec.weights + (f" ({spec.url})" if spec.url else "")
        default_for = ", ".join(task for task, model_id in registry.defaults.items() if model_id == spec.id)
        table.add_row(spec.id, ", ".join(spec.tasks), source, spec.licence, scores, default_for)
    Console(width=200).print(table)


@app.command()
def report(
    warehouse: WarehouseOption = Path("warehouse/data"),
    out: Annotated[Path | None, typer.Option(help="Report folder (default: reports/ beside the warehouse).")] = None,
    window: Annotated[float, typer.Option(help="Rolling-mean window in seconds.")] = 60.0,
) -> None:
    """Rebuild every report page from the warehouse (no inference)."""
    from ser_pipeline.report import build_reports
    from ser_pipeline.warehouse import reports_dir

    try:
        pages = build_reports(warehouse, reports_dir(warehouse, out), window)
    except FileNotFoundError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {len(pages)} page(s) to {pages[0].parent}")


@app.command()
def evaluate(
    truth: Annotated[
        Path,
        typer.Argument(
            help="Folder holding <episode>.truth.csv files (searched recursively).", exists=True, file_okay=False
        ),
    ],
    warehouse: WarehouseOption = Path("warehouse/data"),
    clips: Annotated[
        bool,
        typer.Option(
            help="Also score each sentence's clean source clip, alone and with its speaker's others, and compare "
            "(needs the sources); the gap comes with a 95% paired-bootstrap interval over the sentences."
        ),
    ] = False,
    sources: Annotated[
        Path | None, typer.Option(help="Folder the truth's `source` paths are relative to (default: TRUTH's parent).")
    ] = None,
    false_alarm_minutes: Annotated[
        float,
        typer.Option(
            help="Also count laughter detected in this many minutes of RAVDESS/TESS speech, clean and with the"
            " shared episodes' level of white noise under it (0: skip)."
        ),
    ] = 0.0,
    emotion_model: EmotionModelOption = None,
    dims_model: DimsModelOption = None,
    laughter_model: LaughterModelOption = None,
    operating_point: OperatingPointOption = "balanced",
) -> None:
    """Score the warehouse's sentence segments and laughter events against ground truth (JSON)."""
    import json

    from ser_pipeline.evaluation import clip_versus_sentence, evaluate_warehouse, laughter_false_alarms
    from ser_pipeline.inference import Analyzer

    sources = sources or truth.parent
    lexicon = sources / "lexicon" / "emotion_vad.csv"
    result = evaluate_warehouse(warehouse, truth, lexicon if lexicon.is_file() else None)
    if clips or false_alarm_minutes:
        with _model_problems_exit():
            analyzer = Analyzer(
                device="auto",
                emotion_model=emotion_model,
                dims_model=dims_model,
                laughter_model=laughter_model,
                operating_point=operating_point,
            )
    if clips:
        result["clip_versus_sentence"] = clip_versus_sentence(warehouse, truth, sources, analyzer)
    if false_alarm_minutes:
        speech = sorted(sources.glob("ravdess/*/*.flac")) + sorted(sources.glob("tess/*/*.flac"))
        clean, in_noise = laughter_false_alarms(analyzer, speech, false_alarm_minutes)
        result["laughter_free_speech"], result["laughter_free_speech_in_noise"] = clean, in_noise
    typer.echo(json.dumps(result, indent=2))


@app.command("demo-archive")
def demo_archive(folder: Annotated[Path, typer.Argument(help="Where to write the demo archive.")]) -> None:
    """Write a small synthetic archive (two shows, MP3 + transcripts + feed) to try the pipeline on."""
    from ser_pipeline.demo import write_demo_archive

    typer.echo(write_demo_archive(folder))


@app.command()
def bench(
    durations: Annotated[str, typer.Option(help="Episode lengths for whole-process runs, minutes.")] = "15,60,180",
    stage_minutes: Annotated[float, typer.Option(help="Episode length for the per-stage timings, minutes.")] = 60,
    naive_minutes: Annotated[float, typer.Option(help="Minutes scored by the naive reference.")] = 5,
    source: Annotated[
        Path | None, typer.Option(help="Audio to loop into episodes (default: the shared episodes, else the demo).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    output: Annotated[
        Path | None, typer.Option(help="Write the results as Markdown here (docs/benchmarks.md).")
    ] = None,
) -> None:
    """Time every stage and whole runs on long 44.1 kHz stereo MP3 episodes; peak memory; references."""
    import hashlib
    import shlex
    import sys

    from ser_pipeline.bench import run_bench
    from ser_pipeline.demo import write_demo_archive
    from ser_pipeline.files import cache_root
    from ser_pipeline.training.data import shared_data_dir

    cache = cache_root() / "bench"
    if source is None:
        shared = shared_data_dir() / "episodes"
        source = shared if shared.is_dir() else write_demo_archive(cache / "demo-source")
        cache = cache / ("shared" if shared.is_dir() else "demo")
    else:
        cache = cache / f"source-{hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:12]}"
    try:
        minutes = [float(m) for m in durations.split(",") if m.strip()]
    except ValueError:
        raise typer.BadParameter(f"{durations!r}: give minutes like 15,60,180", param_hint="--durations") from None
    result = run_bench(
        source, cache, minutes, stage_minutes, naive_minutes, device, say=lambda m: typer.echo(m, err=True)
    )
    text = result.markdown("ser-pipeline " + shlex.join(sys.argv[1:]))
    if output:
        output.write_text(text)
        typer.echo(f"wrote {output}", err=True)
    typer.echo(text)


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


def _train_emotion_network(
    data: Path | None,
    epochs: int,
    seed: int,
    held_out: str,
    model_id: str,
    models_dir: Path,
    dims_only: bool,
    members: int = 1,
    speaker_context: bool = False,
    noise_share: float | None = None,
    speed_share: float = 0.0,
    reverb_share: float = 0.0,
) -> None:
    """Shared by `train emotion` (all heads) and `train dims` (the dims head alone); `noise_share`
    None keeps the recipe's."""
    from ser_pipeline.architectures import EmotionNetConfig
    from ser_pipeline.schema import EMOTIONS
    from ser_pipeline.training.cards import emotion_card
    from ser_pipeline.training.data import shared_data_dir
    from ser_pipeline.training.emotion import EmotionRecipe, train
    from ser_pipeline.training.publish import publish

    if members < 1:
        raise typer.BadParameter("at least one member", param_hint="--members")
    recipe = EmotionRecipe(
        data=data or shared_data_dir(),
        epochs=epochs,
        seed=seed,
        held_out_actors=tuple(int(a) for a in held_out.split(",") if a),
        dims_only=dims_only,
        members=members,
        network=EmotionNetConfig(speaker_context=int(speaker_context)),
        speed_share=speed_share,
        reverb_share=reverb_share,
        **({} if noise_share is None else {"noise_share": noise_share}),
    )
    trained = train(recipe, log=typer.echo)
    network, scores = trained.network, trained.scores
    summary = {k: round(v, 4) for k, v in scores.items() if isinstance(v, float)}
    summary["orderings_held"] = f"{sum(scores['orderings'].values())}/{len(scores['orderings'])}"
    if dims_only:
        summary = {k: v for k, v in summary.items() if not k.startswith(("emotion_", "sentiment_"))}
    command = (
        f"ser-pipeline train {'dims' if dims_only else 'emotion'} --epochs {epochs} --seed {seed} --held-out {held_out}"
    )
    if not dims_only:
        command += f" --members {members} --{'' if speaker_context else 'no-'}speaker-context"
    if "context_withheld" in scores:
        summary.update({f"{k}_context_withheld": round(v, 4) for k, v in scores["context_withheld"].items()})
    weights = publish(
        network,
        model_id=model_id,
        architecture="emotion-net-ensemble" if members > 1 else "emotion-net",
        models_dir=models_dir,
        entry={
            "tasks": ["dims"] if dims_only else ["emotion", "sentiment", "dims"],
            "input": "16 kHz mono; 64 log-mel + 20 MFCC per 10 ms frame",
            "labels": ["valence", "arousal", "dominance"] if dims_only else list(EMOTIONS),
            "licence": "CC BY-NC-SA 4.0 (trained on RAVDESS and TESS; non-commercial)",
            "scores": {"held_out_actors": recipe.held_out_actors, **summary},
        },
        card_body=emotion_card(recipe, scores, command),
    )
    typer.echo(f"wrote {weights}: " + ", ".join(f"{k}={v}" for k, v in summary.items()))


@train_app.command("emotion")
def train_emotion(
    data: DataOption = None,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 40,
    seed: int = 0,
    held_out: HeldOutOption = "1,2,5,8,11",
    models_dir: ModelsDirOption = _models_dir_default(),
    model_id: str = "ser-crnn-v2",
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
) -> None:
    """Train the emotion + sentiment + valence/arousal/dominance network and publish it
    (the defaults give ser-crnn-v2; `--members 1 --no-speaker-context --model-id ser-crnn-v1`
    the earlier one)."""
    _train_emotion_network(
        data,
        epochs,
        seed,
        held_out,
        model_id,
        models_dir,
        dims_only=False,
        members=members,
        speaker_context=speaker_context,
        noise_share=noise_share,
        speed_share=speed_share,
        reverb_share=reverb_share,
    )


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
            "and whose dims get the fitted calibration."
        ),
    ] = None,
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
    _publish_cross_validation(document, recipe.data, output, calibrate)


def _publish_cross_validation(document: dict, data: Path, output: Path, calibrate: str | None) -> None:
    """The speaker branch on the same folds (for a speaker-context recipe the statistics alone at
    a share of 0.3, as ser-speaker-branch-v5; else as v3), the report, and the temperatures into
    the registry."""
    import json

    from ser_pipeline.training.cv_report import write_report
    from ser_pipeline.training.publish import set_options
    from ser_pipeline.training.speaker_branch import cross_validate_branch

    typer.echo("speaker branch on the same folds ...")
    context = bool(document["recipe"].get("speaker_context"))
    document["speaker_branch"] = (
        cross_validate_branch(document, data, network_inputs=False, weight=0.3)
        if context
        else cross_validate_branch(document, data)
    )
    (output / "emotion-cv.json").write_text(json.dumps(document) + "\n")
    for path in write_report(document, output):
        typer.echo(f"wrote {path}")
    if calibrate:
        temperatures = {**document["temperatures"], "fused_emotion": document["speaker_branch"]["fused_temperature"]}
        dims_calibration = document["speaker_branch"]["dims"]["calibration"]
        set_options(calibrate, {"temperature": temperatures, "dims_calibration": dims_calibration})
        typer.echo(f"{calibrate}: temperatures {temperatures} and dims calibration {dims_calibration} in the registry")


@train_app.command("speaker-branch")
def train_speaker_branch(
    data: DataOption = None,
    held_out: HeldOutOption = "1,2,5,8,11",
    models_dir: ModelsDirOption = _models_dir_default(),
    model_id: str = "ser-speaker-branch-v5",
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
    ] = "ser-crnn-v2",
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
    emotion log-probabilities, z-scored within their speaker: emotions and dims) and publish it."""
    import json

    from ser_pipeline.training.data import shared_data_dir
    from ser_pipeline.training.publish import publish, set_options
    from ser_pipeline.training.speaker_branch import branch_card, train_branch

    if network_inputs and not cross_validation.is_file():
        raise typer.BadParameter(
            f"{cross_validation} does not exist: run `ser-pipeline train emotion-cv` first",
            param_hint="--cross-validation",
        )
    if not 0 < weight < 1:
        raise typer.BadParameter("the branch's share lies between 0 and 1", param_hint="--weight")
    data = data or shared_data_dir()
    actors = tuple(int(a) for a in held_out.split(",") if a)
    document = json.loads(cross_validation.read_text()) if network_inputs else None
    branch, clips = train_branch(data, actors, document)
    command = f"ser-pipeline train speaker-branch --held-out {held_out} --weight {weight}" + (
        " --network-inputs" if network_inputs else ""
    )
    options, measured = {}, None
    registry_file = _registry_holding(attach, models_dir) if attach else None
    if attach and calibrate:
        options, measured = _fusion_calibration(attach, registry_file, data, actors, branch, weight)
    inputs = " and the network's emotion log-probabilities" if network_inputs else ""
    weights = publish(
        branch,
        model_id=model_id,
        architecture="speaker-branch",
        models_dir=models_dir,
        entry={
            "tasks": ["emotion-branch"],
            "input": f"utterance statistics of 64 log-mel + 20 MFCC frames{inputs}, z-scored within the speaker",
            "labels": [],
            "licence": "CC BY-NC-SA 4.0 (trained on RAVDESS; non-commercial)",
            "scores": {"held_out_actors": actors, **(measured or {"see": "docs/emotion-cv.md"})},
        },
        card_body=branch_card(actors, len(clips), command, network_inputs, weight, attach or "the default", measured),
    )
    typer.echo(f"wrote {weights}")
    if attach:
        from ser_pipeline.files import file_sha256

        options["speaker_branch"] = {"model": model_id, "sha256": file_sha256(weights), "weight": weight}
        set_options(attach, options, registry_file)
        typer.echo(f"{attach}: fused with {model_id} (weight {weight})")


def _registry_holding(model_id: str, models_dir: Path) -> Path:
    """The registry file that lists `model_id`: the one in `models_dir` if it does (a model
    trained there), else the project's."""
    import json

    from ser_pipeline.registry import REGISTRY_FILE

    local = models_dir / REGISTRY_FILE.name
    if local.is_file() and any(m["id"] == model_id for m in json.loads(local.read_text()).get("models", [])):
        return local
    return REGISTRY_FILE


def _fusion_calibration(
    attach: str, registry_file: Path, data: Path, actors: tuple[int, ...], branch, weight: float
) -> tuple[dict, dict]:
    """The `attach` network's (listed in `registry_file`, its weights beside it or on the model
    path) temperatures and dims calibrations with `branch` fused at `weight`, fitted on the
    held-out actors (registry options), and the scores measured there."""
    from ser_pipeline.registry import Registry, load_network, resolve_weights
    from ser_pipeline.training.speaker_branch import fusion_calibration

    spec = Registry.load(registry_file, extra=[]).get(attach)
    beside = registry_file.parent / spec.weights
    network = load_network(resolve_weights(spec, beside if beside.is_file() else None))
    temperatures, calibration, scores = fusion_calibration(data, actors, network, branch, weight)
    typer.echo(f"on the held-out actors: {scores}; temperatures {temperatures}, dims calibration {calibration}")
    return {"temperature": temperatures, "dims_calibration": calibration}, {
        k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()
    }


@train_app.command("dims")
def train_dims(
    data: DataOption = None,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 40,
    seed: int = 0,
    held_out: HeldOutOption = "1,2,5,8,11",
    models_dir: ModelsDirOption = _models_dir_default(),
    model_id: str = "ser-dims-crnn-v1",
) -> None:
    """Train a separate valence/arousal/dominance regressor (same network, dims loss only)."""
    _train_emotion_network(data, epochs, seed, held_out, model_id, models_dir, dims_only=True)


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
    models_dir: ModelsDirOption = _models_dir_default(),
    model_id: str = "laughter-tcn-v6",
) -> None:
    """Train the frame-level laughter detector, evaluate it on the shared episodes, publish it."""
    from dataclasses import asdict

    from ser_pipeline.training.cards import laughter_card
    from ser_pipeline.training.laughter import OPERATING_POINTS, evaluate_on_episodes, train
    from ser_pipeline.training.publish import publish

    recipe = _laughter_recipe(ctx.params)
    network = train(recipe, log=typer.echo)
    scores = evaluate_on_episodes(network, recipe.data / "episodes", OPERATING_POINTS["balanced"])
    summary = {k: round(v, 4) for k, v in scores.items() if isinstance(v, float)}
    weights = publish(
        network,
        model_id=model_id,
        architecture="laughter-tcn" if members == 1 else "laughter-tcn-ensemble",
        models_dir=models_dir,
        entry={
            "tasks": ["laughter"],
            "input": "16 kHz mono; 64 log-mel per 10 ms frame",
            "labels": ["laughter"],
            "licence": "CC BY-NC-ND 4.0 (trained on Nonverbal Vocalization, RAVDESS, TESS; non-commercial)",
            "scores": {"evaluated_on": "shared episodes, held-out laughers", **summary},
            "operating_points": {name: asdict(point) for name, point in OPERATING_POINTS.items()},
        },
        card_body=laughter_card(
            recipe,
            scores,
            OPERATING_POINTS["balanced"],
            f"ser-pipeline train laughter --epochs {epochs} --seed {seed} --members {members}"
            f" --sharpen-share {sharpen_share} --bandlimit-share {bandlimit_share}"
            f" --vocalization-share {vocalization_share}"
            + (f" --negative-classes {negative_classes}" if negative_classes else "")
            + f" --pcen-window {pcen_window}",
        ),
    )
    typer.echo(f"wrote {weights}: " + ", ".join(f"{k}={v}" for k, v in summary.items()))


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
            help="Also the v5 recipe (log-mel input instead of PCEN), v4 (v5 with all 15 other vocalization"
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
    vocalization_ablation: Annotated[
        bool, typer.Option(help="Also the recipe without the other vocalizations as negatives (speech only).")
    ] = False,
) -> None:
    """Leave-laughers-out check of the laughter recipe on laughers outside the shared episodes:
    laughs found per held-out laugher, false alarms in the speech around them, and unheard people's
    other vocalizations taken for laughter."""
    import json
    from dataclasses import replace

    from ser_pipeline.architectures import LaughterNetConfig
    from ser_pipeline.training.laughter_cv import cross_validate_laughers, laugher_folds

    recipe = _laughter_recipe(ctx.params)
    recipes = {"default": recipe}
    if baseline:
        recipes["v5 recipe"] = v5 = replace(recipe, network=replace(recipe.network, pcen_half_window=0))
        recipes["v4 recipe"] = v4 = replace(v5, vocalization_classes=None)
        recipes["v3 recipe"] = replace(v4, band_shift=0)
        recipes["v2 recipe"] = replace(v4, band_shift=0, together_share=0.0)
        recipes["v1 recipe"] = replace(v4, augment=False, network=LaughterNetConfig())
    if vocalization_ablation:
        recipes["no vocalization negatives"] = replace(recipe, vocalization_share=0.0)
    fold_list = laugher_folds(recipe, folds)
    document = {
        "folds": fold_list,
        "epochs": epochs,
        "seed": seed,
        "members": members,
        "sharpen_share": sharpen_share,
        "bandlimit_share": bandlimit_share,
        "vocalization_share": vocalization_share,
        "pcen_window": pcen_window,
        "negative_classes": "all" if recipe.vocalization_classes is None else sorted(recipe.vocalization_classes),
        "results": {},
    }
    for name, candidate in recipes.items():
        result = cross_validate_laughers(candidate, fold_list, jobs)
        document["results"][name] = result
        typer.echo(
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
            typer.echo(
                f"  threshold {threshold}: {swept['laugh_recall']:.3f} found, "
                f"{swept['false_alarms_per_speech_hour']:.1f} false alarms per speech hour{unheard}"
            )
        by_class = sorted(result.get("per_vocalization", {}).items(), key=lambda item: -item[1]["taken_for_laughter"])
        if by_class:
            counts = ", ".join(f"{name} {e['taken_for_laughter']}/{e['clips']}" for name, e in by_class)
            typer.echo(f"  taken for laughter at the default threshold: {counts}")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=1) + "\n")
    typer.echo(f"wrote {output}")


def main() -> None:
    """Console entry point. Once a command has finished and its output is flushed, the process
    ends at once: tearing down torch, Prefect and the interpreter's modules takes over a second
    and does nothing for the user. (Only here: in-process callers of `app` get normal exits.)"""
    import logging
    import os
    import sys

    try:
        app()
        code = 0
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            code = done.code or 0
        else:
            print(done.code, file=sys.stderr)
            code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
