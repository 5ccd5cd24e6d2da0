"""The `ser-pipeline` command line."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from ser_pipeline.query_output import OutputFormat
from ser_pipeline.training.commands import train_app

app = typer.Typer(
    help="Emotion, valence/arousal/dominance and laughter analytics for podcast archives.", no_args_is_help=True
)
app.add_typer(train_app, name="train")


def _print_version(asked: bool) -> None:
    if asked:
        from ser_pipeline.scoring_version import PIPELINE_VERSION

        typer.echo(f"ser-pipeline {PIPELINE_VERSION}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version (with its scoring version)."
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only warnings, errors and the results (no progress lines).")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also each stage of each episode as it starts.")
    ] = False,
) -> None:
    """Emotion, valence/arousal/dominance and laughter analytics for podcast archives."""
    import os

    from ser_pipeline.settings import VERBOSITY_VARIABLE

    if quiet and verbose:
        raise typer.BadParameter("give --quiet or --verbose, not both", param_hint="--quiet")
    if quiet or verbose:  # Prefect reads its level when it is imported (later); `say` and the flow read ours
        os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING" if quiet else "INFO"
        os.environ[VERBOSITY_VARIABLE] = "quiet" if quiet else "verbose"


def say(message: str) -> None:
    """A progress line on stderr (not with --quiet): what a long command is doing now."""
    from ser_pipeline.settings import verbosity

    if verbosity() != "quiet":
        typer.echo(message, err=True)


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

WarehouseOption = Annotated[
    Path, typer.Option(envvar="SER_WAREHOUSE", help="Warehouse folder (Parquet files and podcasts.duckdb).")
]


SegmentationOption = Annotated[str, typer.Option(help="sentence (transcript, else voice activity) | window | vad.")]
WindowOption = Annotated[float, typer.Option(help="Window length in seconds (--segmentation window).")]
HopOption = Annotated[float | None, typer.Option(help="Window hop in seconds (default: the window length).")]
DEVICES = ("auto", "cpu", "cuda")


def _check_device(device: str) -> str:
    if device not in DEVICES:
        raise typer.BadParameter(f"{device!r}: choose auto, cpu or cuda", param_hint="--device")
    return device


DeviceOption = Annotated[str, typer.Option(help="auto | cpu | cuda.", callback=_check_device)]
ReportsOption = Annotated[Path | None, typer.Option(help="Report folder (default: reports/ beside the warehouse).")]
ReportWindowOption = Annotated[float, typer.Option(help="Rolling-mean window of the report charts, seconds.")]
ReprocessOption = Annotated[
    bool, typer.Option(help="Redo episodes whose audio, transcript, models and settings are unchanged.")
]
TaskRunnerOption = Annotated[
    str, typer.Option(help="default (episodes one by one here) | dask (fanned out over a Dask cluster).")
]
DaskAddressOption = Annotated[
    str | None, typer.Option(help="Scheduler of an existing Dask cluster, tcp://host:8786 (default: a local one).")
]
DiarizationOption = Annotated[
    str | None,
    typer.Option(
        help="Who speaks, for segments without a speaker: 'auto' (the embedded diarizer, offline, for a"
        " transcript's sentences without speaker names), 'embedded' (it, for every segment; 'embedded:N' for at"
        " most N speakers, default 8), 'none', or a pinned pyannote.audio pipeline, HUB_ID@<commit> (HF_TOKEN for"
        " gated ones) or DIR@sha256:<hash of its files>."
    ),
]
EpisodeReadingOption = Annotated[
    bool,
    typer.Option(
        help="With the default emotion model, read utterances whose speaker is not known also against their whole"
        " episode (more accurate on new voices; episodes then differ about a third less in valence and arousal)."
        " --no-episode-reading reads each alone, for comparing episodes' levels."
    ),
]
AllowPrivateFeedsOption = Annotated[
    bool,
    typer.Option(
        help="Let a feed URL and its enclosures be on loopback or private addresses (your own network);"
        " refused by default."
    ),
]


def _settings(**options):
    """The run's settings from the command line's options, checked (exit 2 with a message)."""
    from pydantic import ValidationError

    from ser_pipeline.settings import ModelChoice, RunSettings

    _check_segmentation(options["segmentation"])
    if options["task_runner"] not in ("default", "dask"):
        raise typer.BadParameter(f"{options['task_runner']!r}: choose default or dask", param_hint="--task-runner")
    models = {k: options.pop(k) for k in ("emotion_model", "dims_model", "laughter_model", "operating_point")}
    _check_models(*models.values())
    try:
        return RunSettings(
            warehouse=options.pop("warehouse"),
            window_s=options.pop("window"),
            hop_s=options.pop("hop"),
            report_window_s=options.pop("report_window"),
            models=ModelChoice(
                emotion=models["emotion_model"],
                dims=models["dims_model"],
                laughter=models["laughter_model"],
                operating_point=models["operating_point"],
                diarization=None if (chosen := options.pop("diarization")) == "none" else chosen,
                episode_reading=options.pop("episode_reading"),
            ),
            **options,
        )
    except ValidationError as error:
        problem = error.errors()[0]
        raise typer.BadParameter(f"{problem['loc'][-1]}: {problem['msg']}") from None


@app.command()
def run(
    archive: Annotated[str, typer.Argument(help="Folder of show folders, one show folder, or an http(s) feed URL.")],
    warehouse: WarehouseOption = Path("warehouse/data"),
    segmentation: SegmentationOption = "sentence",
    window: WindowOption = 3.0,
    hop: HopOption = None,
    device: DeviceOption = "auto",
    reports: ReportsOption = None,
    report_window: ReportWindowOption = 60.0,
    emotion_model: EmotionModelOption = None,
    dims_model: DimsModelOption = None,
    laughter_model: LaughterModelOption = None,
    operating_point: OperatingPointOption = "balanced",
    reprocess: ReprocessOption = False,
    task_runner: TaskRunnerOption = "default",
    dask_address: DaskAddressOption = None,
    diarization: DiarizationOption = "auto",
    episode_reading: EpisodeReadingOption = True,
    allow_private_feeds: AllowPrivateFeedsOption = False,
    json_summary: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON on standard output (messages go to stderr).")
    ] = False,
) -> None:
    """Analyze every episode of ARCHIVE with the Prefect flow `analyze-archive`.

    Episodes unchanged since their recorded run are skipped. Exit codes: 0 every episode ok or
    skipped; 1 some episodes failed (each is recorded in the `episodes` table with its error,
    the others are complete); 2 a bad option or argument; 3 the run itself could not go on
    (no Prefect server, an unreadable archive).
    """
    options = dict(locals())
    archive = _archive_argument(options.pop("archive"), "ARCHIVE")
    as_json = options.pop("json_summary")
    settings = _settings(**options)
    began = time.perf_counter()
    say(f"run: {archive} -> {settings.warehouse}")
    if not settings.reprocess and (episodes := _unchanged_archive(archive, settings)):
        outcomes = [{"status": "skipped", "duration_s": 0.0} for _ in range(episodes)]
        _print_run_summary(outcomes, time.perf_counter() - began, settings.warehouse, as_json)
        message = "nothing changed since the recorded runs: no flow run started (--reprocess redoes them)"
        typer.echo(message, err=as_json)
        raise typer.Exit(0)
    from ser_pipeline.prefect_api import PrefectServerError, prefect_api

    say("starting Prefect's temporary API server and loading the models (about 10 s)")
    with _exit_on(PrefectServerError), prefect_api(load=lambda: __import__("flows.analyze_archive")):
        from flows.analyze_archive import EpisodesFailed, analyze_archive

        state = analyze_archive(archive=archive, settings=settings, return_state=True)
        result = state.result(raise_on_failure=False)
    if isinstance(result, EpisodesFailed):
        outcomes = result.outcomes
    elif isinstance(result, BaseException):
        typer.echo(f"error: the run could not go on: {type(result).__name__}: {result}", err=True)
        raise typer.Exit(EXIT_NOTHING_RAN)
    else:
        outcomes = result
    failed = [o for o in outcomes if o["status"] == "failed"]
    _print_run_summary(outcomes, time.perf_counter() - began, settings.warehouse, as_json)
    for outcome in failed:
        typer.echo(f"failed: {outcome['show']}/{outcome['episode_id']}: {outcome['error']}", err=True)
    raise typer.Exit(EXIT_EPISODES_FAILED if failed else 0)


@app.command()
def serve(
    archive: Annotated[
        str, typer.Option(help="The archive folder or http(s) feed URL the nightly run analyzes (a default parameter).")
    ],
    cron: Annotated[str, typer.Option(help="When to run, as a cron expression (server time zone: UTC).")] = "0 3 * * *",
    warehouse: WarehouseOption = Path("warehouse/data"),
    segmentation: SegmentationOption = "sentence",
    window: WindowOption = 3.0,
    hop: HopOption = None,
    device: DeviceOption = "auto",
    reports: ReportsOption = None,
    report_window: ReportWindowOption = 60.0,
    emotion_model: EmotionModelOption = None,
    dims_model: DimsModelOption = None,
    laughter_model: LaughterModelOption = None,
    operating_point: OperatingPointOption = "balanced",
    reprocess: ReprocessOption = False,
    task_runner: TaskRunnerOption = "default",
    dask_address: DaskAddressOption = None,
    diarization: DiarizationOption = "auto",
    episode_reading: EpisodeReadingOption = True,
    allow_private_feeds: AllowPrivateFeedsOption = False,
) -> None:
    """Register the Prefect deployment `analyze-archive/nightly` on the server at PREFECT_API_URL
    and serve it: scheduled runs, and `prefect deployment run analyze-archive/nightly` (with
    `--param archive=...` or `--params '{"settings": {...}}'` to override these defaults), run
    here until interrupted. The options are those of `run`, as the deployment's defaults."""
    options = dict(locals())
    archive = _archive_argument(options.pop("archive"), "--archive")
    cron = options.pop("cron")
    options["warehouse"] = options["warehouse"].resolve()
    options["reports"] = options["reports"].resolve() if options["reports"] else None
    settings = _settings(**options)
    import os

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

    parameters = {"archive": archive, "settings": settings.model_dump(mode="json")}
    typer.echo(f"serving analyze-archive/nightly on {PREFECT_API_URL.value()} ({cron}); Ctrl-C stops", err=True)
    analyze_archive.serve(name="nightly", cron=cron, parameters=parameters, pause_on_shutdown=False)


def _unchanged_archive(archive: str, settings) -> int:
    """How many episodes a local archive has when every one of them is unchanged since its
    recorded rows and the views and reports exist (0 otherwise, or when in doubt), read without
    torch, models or Prefect: an unchanged nightly run then costs about a second."""
    from ser_pipeline.archive import discover
    from ser_pipeline.fingerprints import unchanged
    from ser_pipeline.remote import is_remote
    from ser_pipeline.warehouse import outputs_exist, reports_dir

    if is_remote(archive) or not outputs_exist(settings.warehouse, reports_dir(settings.warehouse, settings.reports)):
        return 0
    try:
        models, config = settings.models_fingerprint(), settings.run_config()
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


def _print_run_summary(outcomes: list[dict], seconds: float, warehouse: Path, as_json: bool = False) -> None:
    """The run's counts and speed: a table, or with `as_json` one JSON object (with every
    episode's outcome) on standard output and the notes on stderr."""
    audio_s = sum(o["duration_s"] for o in outcomes if o["status"] != "skipped")  # audio analyzed now
    statuses = [o["status"] for o in outcomes]
    older = sum(o.get("older_code", False) for o in outcomes)
    if as_json:
        import json

        summary = {
            "warehouse": str(warehouse),
            "episodes": len(outcomes),
            **{status: statuses.count(status) for status in ("ok", "failed", "skipped")},
            "audio_hours": round(audio_s / 3600, 4),
            "seconds": round(seconds, 2),
            "x_real_time": round(audio_s / max(seconds, 1e-9), 1),
            "scored_again_by_newer_code": older,
            "outcomes": [o for o in outcomes if "episode_id" in o],
        }
        typer.echo(json.dumps(summary, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "episodes", "ok", "failed", "skipped", "hours of audio", "time taken", "x real time", title="run summary"
    )
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
    if older:
        typer.echo(f"{older} episode(s) scored again: their rows were scored by older scoring code")
    typer.echo(f"warehouse: {warehouse} (query with `ser-pipeline query`)")


@app.command()
def predict(
    files: Annotated[list[Path], typer.Argument(help="Audio files; each whole file is one segment.")],
    output: Annotated[str, typer.Option("--output", "-o", help="CSV file to write; - for standard output.")],
    device: DeviceOption = "auto",
    emotion_model: EmotionModelOption = None,
    dims_model: DimsModelOption = None,
    laughter_model: LaughterModelOption = None,
    speaker_from: Annotated[
        str | None,
        typer.Option(
            help="Read each speaker's files together (speaker context, as in an episode): folder (the file's"
            " folder), prefix (its name up to the first _ or -) or csv:PATH (columns file, speaker)."
            " Without it, each file alone."
        ),
    ] = None,
) -> None:
    """Clip-level predictions: one CSV row per file (`file` exactly as given). A file that cannot
    be read or scored gets a row with the reason in `error` and empty scores; the others are
    scored. Exits 1 when any file failed."""
    import csv
    import sys

    from ser_pipeline.clip_prediction import predict_files, speaker_of
    from ser_pipeline.inference import Analyzer
    from ser_pipeline.schema import PREDICTION_COLUMNS

    try:
        speaker = speaker_of(speaker_from) if speaker_from else None
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--speaker-from") from None
    with _model_problems_exit():
        analyzer = Analyzer(
            device=device, emotion_model=emotion_model, dims_model=dims_model, laughter_model=laughter_model
        )
    predictions = predict_files(analyzer, files, speaker)
    rows = [p.row() for p in predictions]
    failed = [p for p in predictions if p.error]
    for prediction in failed:
        typer.echo(f"failed: {prediction.file}: {prediction.error}", err=True)
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
        str | None,
        typer.Argument(
            help="SQL over the views episodes, segments, laughter_events, episode_summary, ...; '-' (or none,"
            " piped) reads it from standard input."
        ),
    ] = None,
    warehouse: WarehouseOption = Path("warehouse/data"),
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read the SQL from this file (warehouse/example_queries.sql).")
    ] = None,
    output_format: Annotated[
        OutputFormat | None,
        typer.Option(
            "--format",
            help="table | csv | json | parquet (default: from --output's extension, else a table on a terminal and"
            " csv when piped). csv and json keep full precision.",
        ),
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the results to this file.")] = None,
) -> None:
    """Run SQL on the warehouse. Only SELECT statements run (WITH, FROM, DESCRIBE, SHOW and
    SUMMARIZE included), on a connection that reads nothing but the warehouse: no other files,
    no network, no writes. Several statements (and -- comments) run in order, a result each."""
    import sys

    import duckdb

    from ser_pipeline.query import QueryRefused, run_query
    from ser_pipeline.query_output import OutputRefused, choose_format, write_results
    from ser_pipeline.warehouse import WarehouseBusy

    text = _query_text(sql, file)
    fmt = choose_format(output_format, output, sys.stdout.isatty())
    try:
        results = run_query(warehouse, text)
        write_results([result.table for result in results], fmt, output, sys.stdout)
    except (QueryRefused, OutputRefused, WarehouseBusy, duckdb.Error, FileNotFoundError, OSError) as error:
        typer.echo(f"error: {' '.join(str(error).split())}", err=True)
        raise typer.Exit(2) from None


def _query_text(sql: str | None, file: Path | None) -> str:
    """The SQL from the argument, `--file` or standard input (exactly one of them)."""
    import sys

    if sql is not None and file is not None:
        raise typer.BadParameter("give SQL as an argument or with --file, not both", param_hint="--file")
    if file is not None:
        try:
            return file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise typer.BadParameter(f"cannot read {file}: {error}", param_hint="--file") from None
    if sql == "-" or (sql is None and not sys.stdin.isatty()):
        return sys.stdin.read()
    if sql is None:
        raise typer.BadParameter("give SQL as an argument, with --file, or on standard input", param_hint="SQL")
    return sql


@app.command()
def models(
    as_json: Annotated[bool, typer.Option("--json", help="The registry as JSON (defaults and every entry).")] = False,
) -> None:
    """List the model registry: id, tasks, source, licence, measured scores."""
    from ser_pipeline.registry import Registry

    registry = Registry.load()
    if as_json:
        import json

        typer.echo(json.dumps(registry.document(), indent=1))
        return
    from rich.console import Console
    from rich.table import Table

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
    say(f"evaluate: the sentences and laughs of {warehouse} against the truth files under {truth}")
    result = evaluate_warehouse(warehouse, truth, lexicon if lexicon.is_file() else None)
    if not result["per_episode"]:
        typer.echo(
            f"error: nothing to compare: no ok episode in {warehouse} has a <episode>.truth.csv under {truth}", err=True
        )
        raise typer.Exit(EXIT_NOTHING_RAN)
    if clips or false_alarm_minutes:
        say("loading the models for the clip and false-alarm checks")
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
    if not result["sentences_matched"]:
        typer.echo(
            "error: no sentence segment matched the truth (scored with --segmentation window or vad?): the emotion"
            " figures are null; only laughter was compared",
            err=True,
        )
        raise typer.Exit(EXIT_EPISODES_FAILED)


@app.command("evaluate-clips")
def evaluate_clips(
    corpus: Annotated[str, typer.Option(help="nemo | ravdess | tess.")] = "nemo",
    split: Annotated[
        str, typer.Option(help="final (the final test: report only) | dev | all (see docs/evaluation.md).")
    ] = "final",
    context: Annotated[
        str, typer.Option(help="alone (each clip by itself, as predict) | speaker (a speaker's clips together).")
    ] = "alone",
    data: Annotated[
        Path | None, typer.Option(help="Shared data folder (default: $SER_SHARED_DATA or ../shared/data).")
    ] = None,
    emotion_model: EmotionModelOption = None,
    against: Annotated[
        str | None,
        typer.Option(
            help="Also score this emotion model (registry id) on the same clips and give the UAR difference"
            " with its 95% paired bootstrap interval over speakers (a default changes only when it is above 0)."
        ),
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Also write the JSON here.")] = None,
) -> None:
    """Score the emotion model on a corpus's labelled clips, split by speaker under the evaluation
    protocol: UAR with a 95% bootstrap interval over speakers, per-emotion recall, confusions (JSON)."""
    import json
    from dataclasses import asdict

    from ser_pipeline.clip_evaluation import (
        CONTEXTS,
        SPLITS,
        in_split,
        paired_speaker_interval,
        score_clips,
        summarise,
    )
    from ser_pipeline.schema import EMOTION_TO_SENTIMENT, EMOTIONS, SENTIMENTS
    from ser_pipeline.training import data as corpora

    readers = {"nemo": corpora.nemo_clips, "ravdess": corpora.ravdess_clips, "tess": corpora.tess_clips}
    for value, choices, hint in (
        (corpus, readers, "--corpus"),
        (split, SPLITS, "--split"),
        (context, CONTEXTS, "--context"),
    ):
        if value not in choices:
            raise typer.BadParameter(f"{value!r}: choose {' | '.join(choices)}", param_hint=hint)
    with _model_problems_exit():
        clips = [c for c in readers[corpus](data or corpora.shared_data_dir()) if in_split(c, split)]
        from ser_pipeline.inference import Analyzer

        analyzer = Analyzer(device="auto", emotion_model=emotion_model)
        other = Analyzer(device="auto", emotion_model=against) if against else None
    if not clips:
        typer.echo(f"error: {corpus} has no speakers in the {split} split", err=True)
        raise typer.Exit(2)
    typer.echo(f"{len(clips)} {corpus} clips ({split}), {context}", err=True)
    say = lambda line: typer.echo(line, err=True)  # noqa: E731
    predictions = score_clips(analyzer, clips, context, corpora.read_clip, say)
    result = {"model": analyzer.models.ids, **asdict(summarise(clips, predictions, corpus, split, context))}
    if other is not None:
        theirs = score_clips(other, clips, context, corpora.read_clip, say)
        compared = summarise(clips, theirs, corpus, split, context)
        truth, speakers = [c.label for c in clips], [c.speaker for c in clips]
        sentiment_truth = [EMOTION_TO_SENTIMENT[t] for t in truth]
        result["against"] = {
            "model": other.models.ids,
            "emotion_uar": compared.emotion_uar,
            "sentiment_uar": compared.sentiment_uar,
            "emotion_gain": round(result["emotion_uar"] - compared.emotion_uar, 4),
            "emotion_gain_interval": paired_speaker_interval(
                truth, [p for p, _ in predictions], [p for p, _ in theirs], speakers, list(EMOTIONS)
            ),
            "sentiment_gain": round(result["sentiment_uar"] - compared.sentiment_uar, 4),
            "sentiment_gain_interval": paired_speaker_interval(
                sentiment_truth, [s for _, s in predictions], [s for _, s in theirs], speakers, list(SENTIMENTS)
            ),
        }
    text = json.dumps(result)
    if output:
        output.write_text(text + "\n")
    typer.echo(text)


@app.command("demo-archive")
def demo_archive(folder: Annotated[Path, typer.Argument(help="Where to write the demo archive.")]) -> None:
    """Write a small synthetic archive (two shows, MP3 + transcripts + feed) to try the pipeline on."""
    from ser_pipeline.demo import write_demo_archive

    typer.echo(write_demo_archive(folder))


@app.command()
def api(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Server processes, each with its own models.")] = 1,
    device: DeviceOption = "auto",
    emotion_model: EmotionModelOption = None,
    dims_model: DimsModelOption = None,
    laughter_model: LaughterModelOption = None,
    episode_reading: EpisodeReadingOption = True,
    token: Annotated[
        str | None,
        typer.Option(envvar="SER_API_TOKEN", help="Require Authorization: Bearer TOKEN on /v1/ (default: open)."),
    ] = None,
    max_upload_mb: Annotated[float, typer.Option(min=0.001, help="Largest upload accepted, MB.")] = 50.0,
    max_seconds: Annotated[float, typer.Option(min=0.1, help="Longest audio accepted, seconds.")] = 600.0,
    batch_window_ms: Annotated[
        float, typer.Option(min=0, help="How long the first waiting request waits for others to score with it.")
    ] = 10.0,
    max_waiting: Annotated[int, typer.Option(min=1, help="Requests waiting beyond this are answered 503.")] = 64,
) -> None:
    """Serve the models over HTTP: POST /v1/analyze (one file), /v1/analyze/batch, GET /healthz,
    /v1/models; OpenAPI docs at /docs. Models load once, at start."""
    from ser_pipeline.service import ServiceSettings, serve

    _check_models(emotion_model, dims_model, laughter_model, "balanced")
    settings = ServiceSettings(
        host=host, port=port, workers=workers, device=device, emotion_model=emotion_model, dims_model=dims_model,
        laughter_model=laughter_model, episode_reading=episode_reading, token=token, max_upload_mb=max_upload_mb, max_seconds=max_seconds,
        batch_window_ms=batch_window_ms, max_waiting=max_waiting,
    )  # fmt: skip
    say(f"serving on http://{host}:{port} (docs at /docs); Ctrl-C stops")
    serve(settings)


@app.command()
def bench(
    durations: Annotated[str, typer.Option(help="Episode lengths for whole-process runs, minutes.")] = "15,60,180",
    stage_minutes: Annotated[float, typer.Option(help="Episode length for the per-stage timings, minutes.")] = 60,
    naive_minutes: Annotated[float, typer.Option(help="Minutes scored by the naive reference.")] = 5,
    source: Annotated[
        Path | None, typer.Option(help="Audio to loop into episodes (default: the shared episodes, else the demo).")
    ] = None,
    device: DeviceOption = "auto",
    output: Annotated[
        Path | None, typer.Option(help="Write the results as Markdown here (docs/benchmarks.md).")
    ] = None,
    service: Annotated[
        bool, typer.Option(help="Also load the HTTP service (`ser-pipeline api`) with one and eight clients.")
    ] = True,
) -> None:
    """Time every stage and whole runs on long 44.1 kHz stereo MP3 episodes; peak memory; references;
    the HTTP service's latency, throughput and memory under load."""
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
        source, cache, minutes, stage_minutes, naive_minutes, device, say=lambda m: typer.echo(m, err=True),
        service=service,
    )  # fmt: skip
    text = result.markdown("ser-pipeline " + shlex.join(sys.argv[1:]))
    if output:
        output.write_text(text)
        typer.echo(f"wrote {output}", err=True)
    typer.echo(text)


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
