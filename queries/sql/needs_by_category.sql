-- needs_by_category: what families ask for, by need category and the family's stage
-- (pregnancy, 0-12m, 12-36m; 'unknown' when its profile has none): needs recorded, and
-- how many ended met, unmet, declined (reported apart) or are still open.
-- Parameters: the period (--year or --from/--to; month of need.recorded), --source,
-- --as-of, --callback-target-hours.
-- Keys: category, stage.
SELECT
  category,
  coalesce(stage, 'unknown') AS stage,
  count(*) AS needs,
  count(CASE WHEN status = 'met' THEN 1 END) AS met,
  count(CASE WHEN status = 'unmet' THEN 1 END) AS unmet,
  count(CASE WHEN status = 'declined' THEN 1 END) AS declined,
  count(CASE WHEN status = 'open' THEN 1 END) AS open,
  CAST(count(CASE WHEN status = 'unmet' THEN 1 END) AS DOUBLE) / count(*) AS unmet_share
FROM needs
GROUP BY category, coalesce(stage, 'unknown')
ORDER BY category, stage
