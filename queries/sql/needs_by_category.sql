-- needs_by_category: what families ask for, by need category and the family's stage
-- (pregnancy, 0-12m, 12-36m; 'unknown' when its profile has none): needs recorded, and
-- how many ended met, unmet, declined (reported apart) or are still open.
-- Parameters: the period (--year or --from/--to; month of need.recorded), --source,
-- --as-of, --callback-target-hours.
-- Keys: category, stage.

-- The needs are counted by (category, stage, status) first and the few groups then
-- spread into columns: the same counts, with each need's status compared once instead
-- of four times (sums cast back to BIGINT: some engines sum into a wider type).
WITH g AS (
  SELECT category, stage, status, count(*) AS n
  FROM needs
  GROUP BY category, stage, status
)
SELECT
  category,
  coalesce(stage, 'unknown') AS stage,
  CAST(sum(n) AS BIGINT) AS needs,
  CAST(sum(CASE WHEN status = 'met' THEN n ELSE 0 END) AS BIGINT) AS met,
  CAST(sum(CASE WHEN status = 'unmet' THEN n ELSE 0 END) AS BIGINT) AS unmet,
  CAST(sum(CASE WHEN status = 'declined' THEN n ELSE 0 END) AS BIGINT) AS declined,
  CAST(sum(CASE WHEN status = 'open' THEN n ELSE 0 END) AS BIGINT) AS open,
  sum(CASE WHEN status = 'unmet' THEN n ELSE 0 END) / CAST(sum(n) AS DOUBLE) AS unmet_share
FROM g
GROUP BY category, coalesce(stage, 'unknown')
ORDER BY category, stage
