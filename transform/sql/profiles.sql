-- profiles: one row per family, its profile as of the end of the period: merged from
-- every family.profiled event dated up to the period end (the fold and its rules are in
-- `profile_fold.sql`). A family whose latest profile event is on or before the period
-- end has its `profile_base` row as it is; only the families profiled again after the
-- period end are folded anew, from their events up to it (`profiles_to`). When the
-- period ends on or after the latest event of the log, this view is `profile_base`
-- itself (culla renders it so).
-- Parameters: {{to}}.
SELECT * FROM profile_base WHERE last_profile_date <= '{{to}}'
UNION ALL
SELECT * FROM profiles_to
