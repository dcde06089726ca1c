-- profile_events: every family.profiled event of the log, in the order a profile fold
-- (`profile_fold.sql`) folds them: by family, then (at, offset), with its rank `rn` in
-- that order and `only_profile`, true when it is its family's only profile (the rows
-- before and after it are another family's). Kept in memory for the fold of
-- `profile_base`. Rendered a second time as `profile_events_to`, restricted by
-- its filter to the events up to a period end of the families whose profile
-- changed after it (see `profiles`).
-- Parameters: profile_filter (a condition), empty for `profile_events`.
SELECT
  family, has_territory, comune, nil, municipio, stage, language, first_child,
  single_parent, family_network, interpreter_needed, arrived_last_2y, has_pediatrician, at,
  event_date,
  row_number() OVER (ORDER BY family, at_us, "offset") AS rn,
  coalesce(
    (lag(family) OVER (ORDER BY family, at_us, "offset") IS DISTINCT FROM family)
      AND (lead(family) OVER (ORDER BY family, at_us, "offset") IS DISTINCT FROM family)
      AND family IS NOT NULL,
    false) AS only_profile
FROM scoped_events
WHERE type = 'family.profiled' {{profile_filter}}
