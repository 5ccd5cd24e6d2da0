-- Example questions editors ask: run one with `ser-pipeline query "..."`.

-- Which episodes are warmest (highest mean valence)?
SELECT "show", title, round(mean_valence, 3) AS valence FROM episode_summary ORDER BY mean_valence DESC LIMIT 10;

-- Laughs per 10 minutes per show.
SELECT "show", round(sum(laughs) * 600.0 / sum(duration_s), 1) AS laughs_per_10min FROM episode_laughter GROUP BY "show";

-- Which speaker carries the energy (mean arousal per speaker)?
SELECT "show", speaker, count(*) AS segments, round(avg(arousal), 3) AS arousal
FROM segments WHERE speaker IS NOT NULL GROUP BY "show", speaker ORDER BY arousal DESC;

-- Emotion shares per episode.
SELECT "show", episode_id, emotion, round(count(*) * 1.0 / sum(count(*)) OVER (PARTITION BY "show", episode_id), 3) AS share
FROM segments GROUP BY "show", episode_id, emotion ORDER BY "show", episode_id, share DESC;

-- Episodes that failed, and why.
SELECT "show", episode_id, error FROM episodes WHERE status = 'failed';
