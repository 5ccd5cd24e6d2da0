-- Derived views, created after the base views `episodes`, `segments` and `laughter_events`
-- (one Parquet glob each). Statements are separated by semicolons.

-- Laughs per 10 minutes per episode: the figure editors compare shows by.
CREATE OR REPLACE VIEW episode_laughter AS
SELECT
    e.show,
    e.episode_id,
    e.duration_s,
    count(l.start_s) AS laughs,
    count(l.start_s) * 600.0 / nullif(e.duration_s, 0) AS laughs_per_10min
FROM episodes e
LEFT JOIN laughter_events l USING ("show", episode_id)
WHERE e.status = 'ok'
GROUP BY e.show, e.episode_id, e.duration_s;

-- One row per ok episode: its mood and laughter at a glance.
CREATE OR REPLACE VIEW episode_summary AS
SELECT
    e.show,
    e.episode_id,
    e.title,
    e.published,
    e.duration_s,
    el.laughs,
    el.laughs_per_10min,
    avg(s.valence) AS mean_valence,
    avg(s.arousal) AS mean_arousal,
    avg(s.dominance) AS mean_dominance,
    mode(s.emotion) AS dominant_emotion,
    count(s.segment_id) AS segments
FROM episodes e
JOIN episode_laughter el USING ("show", episode_id)
LEFT JOIN segments s USING ("show", episode_id)
GROUP BY ALL;
