-- Example questions editors ask: run one with `ser-pipeline query "..."`.

-- Which episodes are warmest (highest mean valence)?
SELECT "show", title, round(mean_valence, 3) AS valence FROM episode_summary ORDER BY mean_valence DESC LIMIT 10;

-- Laughs per 10 minutes per show.
SELECT "show", round(sum(laughs) * 600.0 / sum(duration_s), 1) AS laughs_per_10min FROM episode_laughter GROUP BY "show";

-- Which speaker carries the energy (mean arousal per speaker)?
SELECT "show", speaker, count(*) AS segments, round(avg(arousal), 3) AS arousal
FROM segments WHERE speaker IS NOT NULL GROUP BY "show", speaker ORDER BY arousal DESC;

-- Emotion shares per episode, as the report pages define them: each emotion's probability
-- averaged over the episode's segments weighted by their duration (the 7 shares sum to 1).
SELECT "show", episode_id,
  round(sum(p_angry * (end_s - start_s)) / sum(end_s - start_s), 3) AS angry,
  round(sum(p_disgust * (end_s - start_s)) / sum(end_s - start_s), 3) AS disgust,
  round(sum(p_fear * (end_s - start_s)) / sum(end_s - start_s), 3) AS fear,
  round(sum(p_happy * (end_s - start_s)) / sum(end_s - start_s), 3) AS happy,
  round(sum(p_neutral * (end_s - start_s)) / sum(end_s - start_s), 3) AS neutral,
  round(sum(p_sad * (end_s - start_s)) / sum(end_s - start_s), 3) AS sad,
  round(sum(p_surprise * (end_s - start_s)) / sum(end_s - start_s), 3) AS surprise
FROM segments GROUP BY "show", episode_id ORDER BY "show", episode_id;

-- Another measure, named apart: the share of segments whose most likely emotion is each one.
SELECT "show", episode_id, emotion,
  round(count(*) * 1.0 / sum(count(*)) OVER (PARTITION BY "show", episode_id), 3) AS share_of_segments_by_top_emotion
FROM segments GROUP BY "show", episode_id, emotion ORDER BY "show", episode_id, share_of_segments_by_top_emotion DESC;

-- Episodes that failed, and why.
SELECT "show", episode_id, error FROM episodes WHERE status = 'failed';
