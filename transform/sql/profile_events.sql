-- profile_events: every family.profiled event dated up to the end of the period, in
-- the order `profiles` folds them: by family, then (at, offset), with its rank `rn` in
-- that order and `only_profile`, true when it is its family's only profile (the rows
-- before and after it are another family's). Kept in memory for `profiles`.
-- Parameters: {{to}} (last local date of the period).
SELECT
  family, has_territory, comune, nil, municipio, stage, language, first_child,
  single_parent, family_network, interpreter_needed, arrived_last_2y, has_pediatrician, at,
  row_number() OVER (ORDER BY family, at_us, "offset") AS rn,
  coalesce(
    (lag(family) OVER (ORDER BY family, at_us, "offset") IS DISTINCT FROM family)
      AND (lead(family) OVER (ORDER BY family, at_us, "offset") IS DISTINCT FROM family)
      AND family IS NOT NULL,
    false) AS only_profile
FROM scoped_events
WHERE type = 'family.profiled' AND event_date <= '{{to}}'
