"""Prefect flow `analyze-archive`: every episode of an archive through the pipeline.

Thin by design: the stages live in `ser_pipeline`; this module adds orchestration only
(retries of transient errors, per-episode isolation, run identity, logging).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run
from prefect.states import Failed
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ser_pipeline.archive import Episode, discover
from ser_pipeline.inference import Analyzer
from ser_pipeline.pipeline import EpisodeOutcome, RunConfig, process_episode, record_failure
from ser_pipeline.prefect_api import send_pending_logs_and_events
from ser_pipeline.remote import Limits, is_remote, mirror_feed
from ser_pipeline.report import build_reports
from ser_pipeline.settings import RunSettings, verbosity
from ser_pipeline.timing import StageClock, describe
from ser_pipeline.warehouse import WarehouseBusy, mark_outputs_fresh, outputs_exist, refresh_views, reports_dir, tidy


class EpisodeFailed(Exception):
    """An episode whose input no retry can mend (undecodable audio, a file refused by the
    archive scan); its failure is already recorded in the warehouse."""

    def __init__(self, outcome: EpisodeOutcome):
        super().__init__(outcome)
        self.outcome = outcome

    def __str__(self) -> str:
        return f"{self.outcome.show}/{self.outcome.episode_id}: {self.outcome.error}"


class EpisodesFailed(Exception):
    """The flow's end when some episodes failed: the others are complete, the views and
    reports are refreshed, and Prefect's UI, automations and notifications see a failed run."""

    def __init__(self, outcomes: list[dict]):
        super().__init__(outcomes)
        self.outcomes = outcomes

    def __str__(self) -> str:
        failed = [o for o in self.outcomes if o["status"] == "failed"]
        named = "; ".join(f"{o['show']}/{o['episode_id']}: {o['error']}" for o in failed[:3])
        more = f"; and {len(failed) - 3} more" if len(failed) > 3 else ""
        return f"{len(failed)} of {len(self.outcomes)} episode(s) failed: {named}{more}"


def _worth_retrying(task, task_run, state: State) -> bool:
    """Transient errors are retried; an episode failed for its input is not."""
    return not isinstance(state.result(raise_on_failure=False), EpisodeFailed)


@task(
    name="analyze-episode",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=_worth_retrying,
    cache_policy=NO_CACHE,
    task_run_name="{episode.show}/{episode.episode_id}",
)
def analyze_episode(
    episode: Episode, config: RunConfig, analyzer: Analyzer, run_id: str, on_stage: Callable[[str], None] | None = None
) -> EpisodeOutcome:
    """One episode; a failed episode is a failed task run (after the retries of transient errors)."""
    outcome = process_episode(episode, config, analyzer, run_id, StageClock(on_stage))
    if outcome.status == "failed":
        raise EpisodeFailed(outcome)
    return outcome


Runs = Iterator[tuple[Episode, State]]


def _one_by_one(episodes: list[Episode], config: RunConfig, analyzer: Analyzer, run_id: str, show_stage) -> Runs:
    """Each episode in this process, in order; `show_stage` hears its stages."""
    for episode in episodes:
        name = f"{episode.show}/{episode.episode_id}"
        state = analyze_episode(
            episode,
            config,
            analyzer,
            run_id,
            lambda stage, name=name: show_stage(f"{name}: {stage}"),
            return_state=True,
        )
        yield episode, state


def _on_dask(episodes: list[Episode], config: RunConfig, analyzer: Analyzer, run_id: str, address: str | None) -> Runs:
    """The episodes fanned out over a Dask cluster (`address`, else a local one of 2 worker
    processes), in the order they finish. With a CUDA device, each task asks for one `GPU`
    resource, so only workers started with `--resources GPU=1` take them."""
    import dask
    from prefect.futures import as_completed
    from prefect_dask import DaskTaskRunner

    runner = (
        DaskTaskRunner(address=address)
        if address
        else DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "dashboard_address": None})
    )
    resources = {"GPU": 1} if analyzer.device.type == "cuda" else {}
    with runner, dask.annotate(resources=resources):
        get_run_logger().info("episodes fanned out over the Dask cluster at %s", runner.client.scheduler.address)
        futures = {
            runner.submit(analyze_episode, {"episode": e, "config": config, "analyzer": analyzer, "run_id": run_id}): e
            for e in episodes
        }
        for future in as_completed(list(futures)):
            future.wait()
            yield futures[future], future.state
        # Workers outlive the run (an existing cluster): what they still hold for this run's
        # server is sent now, while it answers, and their next run starts new senders for its own.
        runner.client.run(send_pending_logs_and_events)


def _progress() -> Progress:
    return Progress(
        TextColumn("episodes"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[speed]}"),
        TextColumn("{task.fields[stage]}"),
        console=Console(stderr=True),
        disable=verbosity() == "quiet",
    )


@flow(name="analyze-archive", log_prints=True)
def analyze_archive(archive: str, settings: RunSettings | None = None) -> list[dict]:
    """Analyze every episode under `archive` (a folder, or an http(s) RSS feed URL) as
    `settings` say (default: `RunSettings()`); write the warehouse and the reports.

    Returns one summary per episode. An episode that fails (after retries, for transient
    errors) is recorded in `episodes` with status 'failed' and its error; the rest go on, and
    the flow then ends failed with `EpisodesFailed` (the summaries in its `outcomes`). An
    episode whose audio, transcript, models, settings and pipeline version are those of its
    recorded rows is skipped (`settings.reprocess` to redo it anyway); when every episode is
    skipped, the views and reports are left as they are. `settings.task_runner="dask"` fans the
    episodes out over a Dask cluster; the rows are the same.
    """
    settings = settings or RunSettings()
    logger = get_run_logger()
    config = settings.run_config()
    run_id = str(flow_run.get_id() or "local")
    analyzer = settings.analyzer()
    for line in tidy(config.warehouse):
        logger.info("warehouse: %s", line)
    # A feed URL is mirrored into the cache (new enclosures downloaded) and read like a folder.
    if is_remote(archive):
        limits = Limits.from_environment(allow_private=settings.allow_private_feeds)
        episodes = discover(mirror_feed(archive, limits=limits, say=logger.info))
    else:
        episodes = discover(Path(archive))
    logger.info(
        "%d episode(s) in %s; models %s; device %s", len(episodes), archive, analyzer.models.ids, analyzer.device
    )
    outcomes, audio_s, began = [], 0.0, time.perf_counter()
    with _progress() as progress:
        bar = progress.add_task("episodes", total=len(episodes), stage="", speed="")
        if settings.task_runner == "dask":
            runs = _on_dask(episodes, config, analyzer, run_id, settings.dask_address)
        else:
            # On a terminal the bar shows each stage; in a log (cron, a file), or with -v, each is a line.
            log_stage = logger.info if verbosity() == "verbose" or not sys.stderr.isatty() else logger.debug

            logged: set[str] = set()  # stages alternate block by block while decoding: a line for the first

            def show_stage(stage: str) -> None:
                progress.update(bar, stage=stage)
                if stage not in logged:
                    logged.add(stage)
                    log_stage("stage %s", stage)

            runs = _one_by_one(episodes, config, analyzer, run_id, show_stage)
        for number, (episode, state) in enumerate(runs, start=1):
            name = f"{episode.show}/{episode.episode_id}"
            if state.is_completed():
                outcome = state.result()
            elif isinstance(error := state.result(raise_on_failure=False), EpisodeFailed):
                outcome = error.outcome
            else:  # given up after its retries: recorded without its inputs, so the next run tries again
                outcome = record_failure(
                    episode, config, run_id, analyzer.models.ids, f"{type(error).__name__}: {error}"
                )
            for warning in outcome.warnings:
                logger.warning("%s: %s", name, warning)
            if outcome.status == "skipped":
                logger.info("[%d/%d] %s skipped: unchanged since its recorded run", number, len(episodes), name)
            elif outcome.status == "failed":
                logger.error("[%d/%d] %s failed: %s", number, len(episodes), name, outcome.error)
            else:
                speed = outcome.duration_s / max(outcome.seconds, 1e-9)
                summary = f"{outcome.segments} segments, {outcome.laughs} laughs, {speed:.0f}x real time"
                (logger.info if verbosity() == "verbose" else logger.debug)(
                    "%s stages: %s", name, describe(outcome.stage_seconds)
                )
                logger.info("[%d/%d] %s ok: %s", number, len(episodes), name, summary)
            outcomes.append(outcome)
            audio_s += outcome.duration_s if outcome.status != "skipped" else 0.0
            speed = audio_s / max(time.perf_counter() - began, 1e-9)
            progress.update(bar, advance=1, speed=f"{speed:.0f}x real time", stage="")
    report_dir = reports_dir(config.warehouse, settings.reports)
    changed = any(o.status != "skipped" for o in outcomes)
    if changed or not outputs_exist(config.warehouse, report_dir):
        try:
            refresh_views(config.warehouse)
            pages = build_reports(config.warehouse, report_dir, settings.report_window_s)
        except WarehouseBusy as error:  # the rows are written: the next run refreshes the rest
            logger.warning("%s; the views and reports will be refreshed by the next run", error)
        else:
            mark_outputs_fresh(config.warehouse)
            logger.info("warehouse %s; %d report page(s) in %s", config.warehouse, len(pages), report_dir)
    else:
        logger.info("nothing changed: warehouse %s and reports in %s left as they were", config.warehouse, report_dir)
    if older := sum(o.older_code for o in outcomes):
        logger.info("%d episode(s) scored again: their rows were scored by older scoring code", older)
    summaries = [asdict(o) for o in outcomes]
    if any(o.status == "failed" for o in outcomes):
        failed = EpisodesFailed(summaries)  # a state, not a raise: Prefect would log a traceback
        return Failed(message=str(failed), data=failed)
    return summaries
