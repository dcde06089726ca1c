-- unmet_needs_by_reason: why needs stay unmet: unmet needs by category and reason
-- (no_resource, waiting_list, not_eligible, service_unavailable, unreachable,
-- no_callback, missed_appointment), by the precedence rules of EVENTS.md.
-- Parameters: the period (--year or --from/--to), --source, --as-of,
-- --callback-target-hours.
-- Keys: category, reason.
SELECT
  category,
  reason,
  count(*) AS needs
FROM needs
WHERE status = 'unmet'
GROUP BY category, reason
ORDER BY category, reason
