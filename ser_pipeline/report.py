"""HTML reports from the warehouse: one page per episode and an archive index.

Pages are self-contained for offline use: one copy of plotly.js sits in the report folder
and every page loads it by relative path. All text from the archive (titles, speakers,
sentences) is escaped.
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import plotly
import plotly.graph_objects as go

from ser_pipeline.files import atomic_write
from ser_pipeline.schema import DIMENSIONS, EMOTION_PROB_COLUMNS, EMOTIONS
from ser_pipeline.warehouse import connect_read_only, episode_key

PLOTLY_JS = "plotly.min.js"
DIMENSION_COLOURS = {"valence": "#1b9e77", "arousal": "#d95f02", "dominance": "#7570b3"}
EMOTION_COLOURS = dict(zip(EMOTIONS, ("#d62728", "#8c564b", "#9467bd", "#2ca02c", "#7f7f7f", "#1f77b4", "#ff7f0e")))

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<script src="{plotly_js}"></script>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}} .meta{{color:#555}}</style>
</head><body>
<p id="plotly-missing" style="display:none;background:#fff3cd;border:1px solid #e0c36c;padding:8px">
The charts need <code>{plotly_js}</code> in the same folder as this page: copy it along with the
page, or rebuild the pages with <code>ser-pipeline report</code>.</p>
{body}
<script>if (typeof Plotly === "undefined") document.getElementById("plotly-missing").style.display = "block";</script>
</body></html>
"""


def page_name(show: str, episode_id: str) -> str:
    return f"{episode_key(show + '/' + episode_id)}.html"


def rolling_mean(times: np.ndarray, values: np.ndarray, weights: np.ndarray, window_s: float) -> np.ndarray:
    """Duration-weighted mean of the values whose times lie within window_s/2 of each time."""
    out = np.empty(len(times))
    for i, t in enumerate(times):
        near = np.abs(times - t) <= window_s / 2
        out[i] = np.average(values[near], weights=weights[near])
    return out


def _figure_html(figure: go.Figure, div_id: str) -> str:
    figure.update_layout(template="plotly_white", margin=dict(l=50, r=20, t=50, b=40))
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id)


def clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


def _as_text(values) -> list[str]:
    """Names shown inside charts, escaped: plotly renders labels, legends and hover text as
    HTML, so a title holding `<a href>` would become a link."""
    return [html.escape(str(value), quote=False) for value in values]  # plotly shows &quot; as is


def _hover_labels(segments: pd.DataFrame) -> list[str]:
    """Segment time, speaker and sentence, escaped (plotly renders hover text as HTML)."""
    return [
        f"{clock(start)}–{clock(end)} · {_as_text([speaker or '–'])[0]}<br>{_as_text([str(text or '')[:200]])[0]}"
        for start, end, speaker, text in zip(segments.start_s, segments.end_s, segments.speaker, segments.text)
    ]


def _laughter_marks(events: pd.DataFrame) -> go.Scatter:
    return go.Scatter(
        x=(events.start_s + events.end_s) / 2,
        y=[1.0] * len(events),
        mode="markers",
        name="laughter",
        marker=dict(symbol="star", size=11, color="goldenrod"),
        text=[f"laughter {clock(e.start_s)}–{clock(e.end_s)}, peak {e.peak_prob:.2f}" for e in events.itertuples()],
        hovertemplate="%{text}<extra></extra>",
    )


def _dims_figure(segments: pd.DataFrame, events: pd.DataFrame, window_s: float) -> go.Figure:
    middle = ((segments.start_s + segments.end_s) / 2).to_numpy()
    weights = (segments.end_s - segments.start_s).clip(lower=1e-3).to_numpy()
    hover = _hover_labels(segments)
    figure = go.Figure()
    for dim in DIMENSIONS:
        values = segments[dim].to_numpy(float)
        colour = DIMENSION_COLOURS[dim]
        figure.add_trace(
            go.Scatter(
                x=middle,
                y=values,
                mode="markers",
                name=f"{dim} (segments)",
                marker=dict(color=colour, size=5),
                opacity=0.25,
                text=hover,
                hovertemplate="%{text}<br>" + dim + " %{y:.2f}<extra></extra>",
            )
        )
        figure.add_trace(
            go.Scatter(
                x=middle,
                y=rolling_mean(middle, values, weights, window_s),
                mode="lines",
                name=f"{dim} ({window_s:.0f} s mean)",
                line=dict(color=colour, width=3),
            )
        )
    figure.add_trace(_laughter_marks(events))
    figure.update_layout(
        # One list, not one add_vrect per event: plotly re-validates every shape on each add,
        # which made an hour with 240 laughs take over a minute.
        shapes=[
            dict(
                type="rect",
                xref="x",
                yref="paper",
                x0=start,
                x1=end,
                y0=0,
                y1=1,
                fillcolor="gold",
                opacity=0.35,
                line_width=0,
                layer="below",
            )
            for start, end in zip(events.start_s, events.end_s)
        ],  # fmt: skip
        title=f"Valence, arousal, dominance: {window_s:.0f} s rolling mean over the segments (laughter shaded, ★)",
        xaxis_title="seconds",
        yaxis=dict(range=[0, 1.05]),
    )
    return figure


def _sentiment_figure(segments: pd.DataFrame) -> go.Figure:
    """One bar per segment, as wide as the segment: p(positive) - p(negative), coloured by label."""
    colours = {"negative": "#d62728", "neutral": "#7f7f7f", "positive": "#2ca02c"}
    figure = go.Figure()
    for label, group in segments.groupby("sentiment"):
        figure.add_trace(
            go.Bar(
                x=(group.start_s + group.end_s) / 2,
                y=group.p_positive - group.p_negative,
                width=group.end_s - group.start_s,
                name=label,
                marker_color=colours.get(label, "#999"),
                hovertext=_hover_labels(group),
                hovertemplate="%{hovertext}<br>positive − negative %{y:.2f}<extra></extra>",
            )
        )
    figure.update_layout(
        title="Sentiment over time: p(positive) − p(negative) per segment",
        xaxis_title="seconds",
        yaxis=dict(range=[-1, 1]),
        bargap=0,
    )
    return figure


def _speaker_section(segments: pd.DataFrame) -> str:
    """Per-speaker talk time, mean valence/arousal/dominance and dominant emotion, when known."""
    known = segments[segments.speaker.notna()]
    if known.empty:
        return ""
    known = known.assign(seconds=known.end_s - known.start_s)
    table = known.groupby("speaker").agg(
        seconds=("seconds", "sum"),
        valence=("valence", "mean"),
        arousal=("arousal", "mean"),
        dominance=("dominance", "mean"),
        emotion=("emotion", lambda e: e.mode().iat[0]),
    )
    rows = "".join(
        f"<tr><td>{html.escape(str(name))}</td><td>{r.seconds / 60:.1f}</td>"
        f"<td>{r.seconds / table.seconds.sum():.0%}</td><td>{r.valence:.2f}</td><td>{r.arousal:.2f}</td>"
        f"<td>{r.dominance:.2f}</td><td>{html.escape(r.emotion)}</td></tr>"
        for name, r in table.iterrows()
    )
    chart = go.Figure(
        [
            go.Bar(x=_as_text(table.index), y=table[dim], name=dim, marker_color=DIMENSION_COLOURS[dim])
            for dim in DIMENSIONS
        ]
    )
    chart.update_layout(title="Mean valence, arousal, dominance per speaker", yaxis=dict(range=[0, 1]))
    return (
        "<h2>Speakers</h2><table><tr><th>speaker</th><th>minutes</th><th>share</th><th>valence</th>"
        f"<th>arousal</th><th>dominance</th><th>dominant emotion</th></tr>{rows}</table>"
        + _figure_html(chart, "speakers")
    )


def _emotion_figures(segments: pd.DataFrame) -> tuple[go.Figure, go.Figure]:
    weights = (segments.end_s - segments.start_s).to_numpy()
    shares = {e: float(np.average(segments[c], weights=weights)) for e, c in zip(EMOTIONS, EMOTION_PROB_COLUMNS)}
    whole = go.Figure(
        go.Bar(x=list(shares), y=list(shares.values()), marker_color=[EMOTION_COLOURS[e] for e in shares])
    )
    whole.update_layout(title="Emotion shares, whole episode (duration-weighted mean probability)", yaxis_title="share")
    over_time = go.Figure()
    middle = (segments.start_s + segments.end_s) / 2
    for emotion, column in zip(EMOTIONS, EMOTION_PROB_COLUMNS):
        over_time.add_trace(
            go.Scatter(
                x=middle,
                y=segments[column],
                name=emotion,
                stackgroup="emotions",
                line=dict(color=EMOTION_COLOURS[emotion], width=0.5),
            )
        )
    over_time.update_layout(
        title="Emotion probabilities over time (stacked)", xaxis_title="seconds", yaxis=dict(range=[0, 1])
    )
    return whole, over_time


def models_line(models_json: str | None) -> str:
    """The `episodes.models` record for people: "emotion ser-whisper-head-v1, dims ..., laughter
    laughter-tcn-v7 (operating point balanced)"; the record as it is if it is not that JSON."""
    try:
        models = json.loads(models_json or "{}")
    except json.JSONDecodeError:
        return models_json or ""
    if not isinstance(models, dict):
        return str(models_json)
    parts = []
    for task, model in models.items():
        model_id, _, point = str(model).partition("@")
        parts.append(f"{task.replace('_', ' ')} {model_id}" + (f" (operating point {point})" if point else ""))
    return ", ".join(parts)


def episode_page(episode: pd.Series, segments: pd.DataFrame, events: pd.DataFrame, window_s: float) -> str:
    minutes = (episode.duration_s or 0) / 60
    per_10 = len(events) / minutes * 10 if minutes else 0.0
    published = episode.published.strftime("%Y-%m-%d") if pd.notna(episode.published) else "undated"
    meta = (
        f"<h1>{html.escape(episode.title)}</h1>"
        f"<p class='meta'>Show: {html.escape(episode.show)} · {published} · {minutes:.1f} min · "
        f"{len(events)} laughs ({per_10:.1f} per 10 min) · models: {html.escape(models_line(episode.models))}</p>"
        f"<p><a href='index.html'>Archive index</a></p>"
    )
    if segments.empty:
        return meta + "<p>No segments.</p>"
    whole, over_time = _emotion_figures(segments)
    return (
        meta
        + _figure_html(_dims_figure(segments, events, window_s), "dims")
        + _figure_html(_sentiment_figure(segments), "sentiment")
        + _figure_html(over_time, "emotions-over-time")
        + _figure_html(whole, "emotion-shares")
        + _speaker_section(segments)
    )


def _index_page(summary: pd.DataFrame, failed: pd.DataFrame) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(r.show)}</td><td><a href='{page_name(r.show, r.episode_id)}'>{html.escape(r.title)}</a></td>"
        f"<td>{r.published.strftime('%Y-%m-%d') if pd.notna(r.published) else ''}</td><td>{r.duration_s / 60:.1f}</td>"
        f"<td>{r.laughs_per_10min:.1f}</td><td>{r.mean_valence:.2f}</td><td>{r.mean_arousal:.2f}</td>"
        f"<td>{r.mean_dominance:.2f}</td><td>{html.escape(str(r.dominant_emotion))}</td></tr>"
        for r in summary.itertuples()
    )
    table = (
        "<table><tr><th>show</th><th>episode</th><th>date</th><th>minutes</th><th>laughs / 10 min</th>"
        f"<th>valence</th><th>arousal</th><th>dominance</th><th>dominant emotion</th></tr>{rows}</table>"
    )
    chart = go.Figure()
    for show, group in summary.groupby("show"):
        chart.add_trace(go.Bar(x=_as_text(group.title), y=group.laughs_per_10min, name=_as_text([show])[0]))
    chart.update_layout(title="Laughs per 10 minutes per episode", yaxis_title="laughs / 10 min")
    valence = go.Figure()
    for show, group in summary.sort_values("published").groupby("show"):
        valence.add_trace(
            go.Scatter(
                x=group.published,
                y=group.mean_valence,
                mode="lines+markers",
                name=_as_text([show])[0],
                text=_as_text(group.title),
            )
        )
    valence.update_layout(title="Mean valence per episode over time", yaxis=dict(range=[0, 1]))
    failures = "".join(
        f"<li>{html.escape(r.show)} / {html.escape(r.episode_id)}: {html.escape(str(r.error))}</li>"
        for r in failed.itertuples()
    )
    return (
        "<h1>Podcast archive</h1>"
        + table
        + _figure_html(chart, "laughs-per-10min")
        + _figure_html(valence, "valence-over-time")
        + (f"<h2>Failed episodes</h2><ul>{failures}</ul>" if failures else "")
    )


def _write_page(page: Path, text: str) -> None:
    """A page replaced in one step: a browser reloading during a run never reads half of one."""
    with atomic_write(page) as temporary:
        temporary.write_text(text, encoding="utf-8")


def build_reports(warehouse: Path, out: Path, window_s: float = 60.0) -> list[Path]:
    """Write every episode page, the index and one plotly.js into `out`; returns the pages."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(plotly.__file__).parent / "package_data" / PLOTLY_JS, out / PLOTLY_JS)
    with connect_read_only(warehouse) as db:
        episodes = db.sql("""SELECT * FROM episodes WHERE status = 'ok' ORDER BY "show", published, episode_id""").df()
        failed = db.sql(
            """SELECT "show", episode_id, error FROM episodes WHERE status = 'failed' ORDER BY "show", episode_id"""
        ).df()
        summary = db.sql("""SELECT * FROM episode_summary ORDER BY "show", published, episode_id""").df()
        segments = db.sql("""SELECT * FROM segments ORDER BY "show", episode_id, start_s""").df()
        events = db.sql("""SELECT * FROM laughter_events ORDER BY "show", episode_id, start_s""").df()
    pages = []
    for episode in episodes.itertuples(index=False):
        episode = pd.Series(episode._asdict())
        own = (segments.show == episode.show) & (segments.episode_id == episode.episode_id)
        own_events = (events.show == episode.show) & (events.episode_id == episode.episode_id)
        body = episode_page(episode, segments[own], events[own_events], window_s)
        page = out / page_name(episode.show, episode.episode_id)
        _write_page(page, _PAGE.format(title=html.escape(episode.title), plotly_js=PLOTLY_JS, body=body))
        pages.append(page)
    index = out / "index.html"
    _write_page(index, _PAGE.format(title="Podcast archive", plotly_js=PLOTLY_JS, body=_index_page(summary, failed)))
    return [index, *pages]
