-- family_base: for every family in the log, the first local date on which each
-- history-based isolation-risk flag holds: `three_within_30d_from` (the first contact
-- that is the family's third within 30 days), `psychological_need_from` and
-- `economic_need_from` (the first need.recorded event of that category, any version).
-- A flag holds as of the end of a period exactly when its date is on or before it, so
-- `families` decides them for any period from this one table. A base projection: it
-- depends only on the log, the source and the as-of instant (persisted once per commit).
-- Parameters: none (the source and as-of instant are applied by `scoped_events`).
SELECT
  family,
  min(three_date) AS three_within_30d_from,
  min(psychological_date) AS psychological_need_from,
  min(economic_date) AS economic_need_from
FROM (
  SELECT
    family,
    received_date AS three_date,
    CAST(NULL AS VARCHAR) AS psychological_date,
    CAST(NULL AS VARCHAR) AS economic_date
  FROM contact_base
  WHERE third_within_30d
  UNION ALL
  SELECT
    family,
    CAST(NULL AS VARCHAR) AS three_date,
    CASE WHEN category = 'psychological' THEN event_date END AS psychological_date,
    CASE WHEN category = 'economic' THEN event_date END AS economic_date
  FROM scoped_events
  WHERE type = 'need.recorded' AND category IN ('psychological', 'economic')
) f
GROUP BY family
