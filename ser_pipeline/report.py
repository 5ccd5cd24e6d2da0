"""HTML reports from the warehouse: one page per episode and an archive index.

Pages are self-contained for offline use: one copy of plotly.js sits in the report folder
and every page loads it by relative path. All text from the archive (titles, speakers,
sentences) is escaped.
"""

from __future__ import annotations

import html
import json
import os
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


def clock_label(seconds: float) -> str:
    """A time as a podcast player shows it: m:ss, or h:mm:ss from an hour on."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


TICK_STEPS_S = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


def time_axis(duration_s: float) -> dict:
    """One time axis for every chart of a page: 0 to the end, ticks in m:ss (h:mm:ss past an
    hour) at the first step that gives at most 12 of them."""
    step = next((s for s in TICK_STEPS_S if duration_s / s <= 12), TICK_STEPS_S[-1])
    ticks = [float(t) for t in range(0, int(duration_s) + 1, step)]
    return dict(
        range=[0, max(duration_s, 1.0)],
        tickvals=ticks,
        ticktext=[clock_label(t) for t in ticks],
        title="time (m:ss)" if duration_s < 3600 else "time (h:mm:ss)",
    )


# The time charts' legends go under their axes, so that every plot area of a page has one width
# and the time axes line up.
TIME_LEGEND = dict(orientation="h", yanchor="top", y=-0.2, x=0)

BIN_S = 30.0  # episodes longer than BINNED_AFTER_S show sentiment and emotions per BIN_S seconds
BINNED_AFTER_S = 600.0


def time_bins(segments: pd.DataFrame, columns: list[str], bin_s: float = BIN_S) -> pd.DataFrame:
    """The segments' `columns` averaged per `bin_s` seconds (weighted by how long each segment
    lies in the bin, by its middle), with each bin's start, end and segment count."""
    middle = (segments.start_s + segments.end_s) / 2
    weights = (segments.end_s - segments.start_s).clip(lower=1e-3)
    frame = segments[columns].mul(weights, axis=0).assign(weight=weights, bin=(middle // bin_s).astype(int))
    grouped = frame.groupby("bin")
    means = grouped[columns].sum().div(grouped["weight"].sum(), axis=0)
    means["start_s"] = means.index * bin_s
    means["end_s"] = means.start_s + bin_s
    means["segments"] = grouped.size()
    return means.reset_index(drop=True)


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
        customdata=events.start_s,
        text=[f"laughter {clock(e.start_s)}–{clock(e.end_s)}, peak {e.peak_prob:.2f}" for e in events.itertuples()],
        hovertemplate="%{text}<extra></extra>",
    )


def _dims_figure(segments: pd.DataFrame, events: pd.DataFrame, window_s: float, duration_s: float) -> go.Figure:
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
                customdata=segments.start_s,
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
        xaxis=time_axis(duration_s),
        legend=TIME_LEGEND,
        yaxis=dict(range=[0, 1.05]),
    )
    return figure


def _sentiment_figure(segments: pd.DataFrame, duration_s: float) -> go.Figure:
    """p(positive) - p(negative) over time: a bar per segment, as wide as it, coloured by its label;
    past BINNED_AFTER_S a bar per BIN_S seconds (the segments' weighted mean), so an hour does
    not become a barcode."""
    colours = {"negative": "#d62728", "neutral": "#7f7f7f", "positive": "#2ca02c"}
    figure = go.Figure()
    if duration_s > BINNED_AFTER_S:
        bins = time_bins(segments, ["p_positive", "p_negative"])
        balance = bins.p_positive - bins.p_negative
        figure.add_trace(
            go.Bar(
                x=(bins.start_s + bins.end_s) / 2,
                y=balance,
                width=BIN_S,
                name=f"{BIN_S:.0f} s mean",
                marker_color=[
                    colours["positive"] if b > 0.1 else colours["negative"] if b < -0.1 else colours["neutral"]
                    for b in balance
                ],
                customdata=bins.start_s,
                hovertext=[
                    f"{clock_label(a)}–{clock_label(b)} · {n} segments"
                    for a, b, n in zip(bins.start_s, bins.end_s, bins.segments)
                ],
                hovertemplate="%{hovertext}<br>positive − negative %{y:.2f}<extra></extra>",
            )
        )
        title = f"Sentiment over time: p(positive) − p(negative), {BIN_S:.0f} s means"
    else:
        for label, group in segments.groupby("sentiment"):
            figure.add_trace(
                go.Bar(
                    x=(group.start_s + group.end_s) / 2,
                    y=group.p_positive - group.p_negative,
                    width=group.end_s - group.start_s,
                    name=label,
                    marker_color=colours.get(label, "#999"),
                    customdata=group.start_s,
                    hovertext=_hover_labels(group),
                    hovertemplate="%{hovertext}<br>positive − negative %{y:.2f}<extra></extra>",
                )
            )
        title = "Sentiment over time: p(positive) − p(negative) per segment"
    figure.update_layout(
        title=title, xaxis=time_axis(duration_s), legend=TIME_LEGEND, yaxis=dict(range=[-1, 1]), bargap=0
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
        "<h2>Speakers</h2><table id='speakers'><tr><th>speaker</th><th>minutes</th><th>share</th><th>valence</th>"
        f"<th>arousal</th><th>dominance</th><th>dominant emotion</th></tr>{rows}</table>"
        + _figure_html(chart, "speakers")
    )


def _emotion_figures(segments: pd.DataFrame, duration_s: float | None = None) -> tuple[go.Figure, go.Figure]:
    shares = {e: float(v) for e, v in emotion_shares(segments).iloc[0][list(EMOTIONS)].items()}
    whole = go.Figure(
        go.Bar(x=list(shares), y=list(shares.values()), marker_color=[EMOTION_COLOURS[e] for e in shares])
    )
    whole.update_layout(title="Emotion shares, whole episode (duration-weighted mean probability)", yaxis_title="share")
    duration_s = float(segments.end_s.max()) if duration_s is None else duration_s
    binned = duration_s > BINNED_AFTER_S
    points = time_bins(segments, list(EMOTION_PROB_COLUMNS)) if binned else segments
    over_time = go.Figure()
    middle = (points.start_s + points.end_s) / 2
    for emotion, column in zip(EMOTIONS, EMOTION_PROB_COLUMNS):
        over_time.add_trace(
            go.Scatter(
                x=middle,
                y=points[column],
                name=emotion,
                stackgroup="emotions",
                line=dict(color=EMOTION_COLOURS[emotion], width=0.5),
                customdata=points.start_s,
            )
        )
    over_time.update_layout(
        title=f"Emotion probabilities over time (stacked{f', {BIN_S:.0f} s means' if binned else ''})",
        xaxis=time_axis(duration_s),
        legend=TIME_LEGEND,
        yaxis=dict(range=[0, 1]),
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


_SEEK_SCRIPT = """<script>(function () {
  var audio = document.getElementById("episode-audio");
  function seek(seconds) {
    if (!audio || !isFinite(seconds)) return;
    audio.currentTime = seconds;
    if (audio.readyState > 0) audio.play().catch(function () {});
  }
  document.querySelectorAll("[data-seek]").forEach(function (row) {
    row.addEventListener("click", function () { seek(parseFloat(row.dataset.seek)); });
  });
  document.querySelectorAll(".js-plotly-plot").forEach(function (chart) {
    if (!chart.on) return;
    chart.on("plotly_click", function (event) {
      var point = event.points[0], at = point.customdata;
      seek(typeof at === "number" ? at : point.x);
    });
  });
})();</script>"""


def _audio_section(audio_src: str | None, audio_path: str | None) -> str:
    if audio_src:
        return (
            f"<p><audio id='episode-audio' controls preload='metadata' src='{html.escape(audio_src)}'></audio> "
            "Click a point, a bar or a row below to play from there.</p>"
        )
    where = f" ({html.escape(str(audio_path))})" if audio_path else ""
    return (
        f"<p class='note'>The episode's audio{where} cannot be reached from this page's folder, so it cannot be"
        " played here; the times below are those of the episode.</p>"
    )


def _moments_section(segments: pd.DataFrame, events: pd.DataFrame, count: int = 5) -> str:
    """Laughs, and the most positive, most negative and most aroused segments, with their time,
    speaker and sentence; each row plays the audio from there."""

    def row(start: float, kind: str, value: str, speaker, text) -> str:
        return (
            f"<tr class='moment' data-seek='{start:.2f}'><td>{clock_label(start)}</td><td>{kind}</td><td>{value}</td>"
            f"<td>{html.escape(str(speaker or ''))}</td><td>{html.escape(str(text or '')[:200])}</td></tr>"
        )

    # the segment heard at each laugh: the last to start at or before it (segments come by start)
    heard = np.searchsorted(segments.start_s.to_numpy(), events.start_s.to_numpy(), side="right") - 1
    speakers, texts = segments.speaker.to_numpy(), segments.text.to_numpy()
    rows = []
    for event, near in zip(events.itertuples(), heard.clip(min=0), strict=True):
        rows.append(
            row(event.start_s, "laughter", f"{event.end_s - event.start_s:.1f} s, peak {event.peak_prob:.2f}",
                speakers[near], texts[near])
        )  # fmt: skip
    balance = segments.p_positive - segments.p_negative
    for kind, order, values in (
        ("most positive", balance.sort_values(ascending=False).index, balance),
        ("most negative", balance.sort_values().index, balance),
        ("most aroused", segments.arousal.sort_values(ascending=False).index, segments.arousal),
    ):
        for index in order[:count]:
            segment = segments.loc[index]
            label = "positive − negative" if kind != "most aroused" else "arousal"
            rows.append(row(segment.start_s, kind, f"{label} {values[index]:.2f}", segment.speaker, segment.text))
    return (
        "<h2>Moments</h2><table id='moments'><tr><th>time</th><th>moment</th><th>measure</th><th>speaker</th>"
        f"<th>sentence</th></tr>{''.join(rows)}</table>"
    )


def episode_page(
    episode: pd.Series, segments: pd.DataFrame, events: pd.DataFrame, window_s: float, audio_src: str | None = None
) -> str:
    """One episode's page; `audio_src`: the episode's audio as this page's folder reaches it
    (a relative link), or None when it cannot."""
    duration_s = float(episode.duration_s or (segments.end_s.max() if not segments.empty else 0.0))
    minutes = duration_s / 60
    per_10 = len(events) / minutes * 10 if minutes else 0.0
    published = episode.published.strftime("%Y-%m-%d") if pd.notna(episode.published) else "undated"
    meta = (
        f"<h1>{html.escape(episode.title)}</h1>"
        f"<p class='meta'>Show: {html.escape(episode.show)} · {published} · {clock_label(duration_s)} · "
        f"{len(events)} laughs ({per_10:.1f} per 10 min) · models: {html.escape(models_line(episode.models))}</p>"
        f"<p><a href='index.html'>Archive index</a></p>"
    )
    if segments.empty:
        return meta + "<p>No segments.</p>"
    segments = segments.reset_index(drop=True)
    whole, over_time = _emotion_figures(segments, duration_s)
    return (
        meta
        + _audio_section(audio_src, episode.get("audio_path"))
        + _figure_html(_dims_figure(segments, events, window_s, duration_s), "dims")
        + _figure_html(_sentiment_figure(segments, duration_s), "sentiment")
        + _figure_html(over_time, "emotions-over-time")
        + _figure_html(whole, "emotion-shares")
        + _moments_section(segments, events)
        + _speaker_section(segments)
        + _SEEK_SCRIPT
    )


_SORT_SCRIPT = """<script>(function () {
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (heading, column) {
      heading.style.cursor = "pointer";
      heading.addEventListener("click", function () {
        var body = table.tBodies[0], rows = Array.from(body.rows);
        var down = heading.dataset.order !== "descending";
        table.querySelectorAll("thead th").forEach(function (h) { delete h.dataset.order; });
        heading.dataset.order = down ? "descending" : "ascending";
        function key(row) {
          var text = row.cells[column].textContent.trim(), number = parseFloat(text);
          return /^-?[0-9.]+$/.test(text) ? number : text.toLowerCase();
        }
        rows.sort(function (a, b) {
          var x = key(a), y = key(b), order = x < y ? -1 : x > y ? 1 : 0;
          return down ? -order : order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
})();</script>"""


def _show_trends(summary: pd.DataFrame) -> dict[str, go.Figure]:
    """Per show, over publication dates: mean valence, mean arousal and laughs per 10 minutes."""
    dated = summary[summary.published.notna()].sort_values("published")
    figures = {}
    for div_id, column, title, y_range in (
        ("valence-over-time", "mean_valence", "Mean valence per episode", [0, 1]),
        ("arousal-over-time", "mean_arousal", "Mean arousal per episode", [0, 1]),
        ("laughs-over-time", "laughs_per_10min", "Laughs per 10 minutes per episode", None),
    ):
        figure = go.Figure()
        for show, group in dated.groupby("show"):
            figure.add_trace(
                go.Scatter(
                    x=group.published,
                    y=group[column],
                    mode="lines+markers",
                    name=_as_text([show])[0],
                    text=_as_text(group.title),
                    hovertemplate="%{text}<br>%{x|%Y-%m-%d}: %{y:.2f}<extra></extra>",
                )
            )
        figure.update_layout(title=title, yaxis=dict(range=y_range) if y_range else {}, xaxis_title="published")
        figures[div_id] = figure
    return figures


def emotion_shares(segments: pd.DataFrame) -> pd.DataFrame:
    """Each episode's emotion shares (the episode pages' definition: each emotion's probability
    averaged over the segments, weighted by their duration), one row per show and episode."""
    weights = segments.end_s - segments.start_s
    weighted = segments[list(EMOTION_PROB_COLUMNS)].mul(weights, axis=0).assign(weight=weights)
    weighted[["show", "episode_id"]] = segments[["show", "episode_id"]]
    sums = weighted.groupby(["show", "episode_id"]).sum()
    shares = sums[list(EMOTION_PROB_COLUMNS)].div(sums.weight, axis=0)
    return shares.set_axis(list(EMOTIONS), axis=1).reset_index()


def _emotion_share_trends(summary: pd.DataFrame, shares: pd.DataFrame) -> dict[str, go.Figure]:
    """Per show, each episode's emotion shares as a stacked bar at its publication date."""
    dated = summary[summary.published.notna()].merge(shares, on=["show", "episode_id"]).sort_values("published")
    figures = {}
    for number, (show, group) in enumerate(dated.groupby("show")):
        figure = go.Figure(
            [
                go.Bar(
                    x=group.published,
                    y=group[emotion],
                    name=emotion,
                    marker_color=EMOTION_COLOURS[emotion],
                    hovertext=_as_text(group.title),
                    hovertemplate="%{hovertext}<br>" + emotion + " %{y:.2f}<extra></extra>",
                )
                for emotion in EMOTIONS
            ]
        )
        figure.update_layout(
            barmode="stack", title=f"Emotion shares per episode: {_as_text([show])[0]}", yaxis=dict(range=[0, 1])
        )
        figures[f"emotion-shares-over-time-{number}"] = figure
    return figures


def _index_page(summary: pd.DataFrame, failed: pd.DataFrame, shares: pd.DataFrame) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(r.show)}</td><td><a href='{page_name(r.show, r.episode_id)}'>{html.escape(r.title)}</a></td>"
        f"<td>{r.published.strftime('%Y-%m-%d') if pd.notna(r.published) else ''}</td><td>{r.duration_s / 60:.1f}</td>"
        f"<td>{r.laughs_per_10min:.1f}</td><td>{r.mean_valence:.2f}</td><td>{r.mean_arousal:.2f}</td>"
        f"<td>{r.mean_dominance:.2f}</td><td>{html.escape(str(r.dominant_emotion))}</td></tr>"
        for r in summary.itertuples()
    )
    table = (
        "<table id='episodes' class='sortable'><thead><tr><th>show</th><th>episode</th><th>date</th><th>minutes</th>"
        "<th>laughs / 10 min</th><th>valence</th><th>arousal</th><th>dominance</th><th>dominant emotion</th></tr>"
        f"</thead><tbody>{rows}</tbody></table>"
    )
    chart = go.Figure()
    for show, group in summary.groupby("show"):
        chart.add_trace(go.Bar(x=_as_text(group.title), y=group.laughs_per_10min, name=_as_text([show])[0]))
    chart.update_layout(title="Laughs per 10 minutes per episode", yaxis_title="laughs / 10 min")
    trends = {**_show_trends(summary), **_emotion_share_trends(summary, shares)}
    failures = "".join(
        f"<li>{html.escape(r.show)} / {html.escape(r.episode_id)}: {html.escape(str(r.error))}</li>"
        for r in failed.itertuples()
    )
    return (
        "<h1>Podcast archive</h1><p class='note'>Click a column's heading to sort by it.</p>"
        + table
        + _SORT_SCRIPT
        + _figure_html(chart, "laughs-per-10min")
        + "<h2>Trends per show, by publication date</h2>"
        + "".join(_figure_html(figure, div_id) for div_id, figure in trends.items())
        + (f"<h2>Failed episodes</h2><ul>{failures}</ul>" if failures else "")
    )


def _write_page(page: Path, text: str) -> None:
    """A page replaced in one step: a browser reloading during a run never reads half of one."""
    with atomic_write(page) as temporary:
        temporary.write_text(text, encoding="utf-8")


def _audio_link(audio_path: str | None, out: Path) -> str | None:
    """The episode's audio file relative to the report folder (a link that survives moving both
    together), or None when there is no such file."""
    if not audio_path or not Path(audio_path).is_file():
        return None
    return Path(os.path.relpath(Path(audio_path).resolve(), out.resolve())).as_posix()


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
        body = episode_page(episode, segments[own], events[own_events], window_s, _audio_link(episode.audio_path, out))
        page = out / page_name(episode.show, episode.episode_id)
        _write_page(page, _PAGE.format(title=html.escape(episode.title), plotly_js=PLOTLY_JS, body=body))
        pages.append(page)
    index = out / "index.html"
    _write_page(
        index,
        _PAGE.format(
            title="Podcast archive", plotly_js=PLOTLY_JS, body=_index_page(summary, failed, emotion_shares(segments))
        ),
    )
    return [index, *pages]
