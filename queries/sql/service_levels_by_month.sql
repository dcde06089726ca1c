-- service_levels_by_month: how well the phone line answered, per month: answer rate
-- (answered / received calls), abandonment rate (abandoned / received), speed of answer
-- (median and p90 of wait_s over answered calls, exact with linear interpolation) and
-- service level (answered within 30 s / received) beside its 85% target.
-- Parameters: the period (--year or --from/--to), --source.
-- Keys: month, source. Chats are not counted here.
SELECT
  month,
  source,
  count(*) AS calls,
  count(CASE WHEN answered THEN 1 END) AS answered,
  count(CASE WHEN abandoned THEN 1 END) AS abandoned,
  count(CASE WHEN answered_within_30s THEN 1 END) AS answered_within_30s,
  CAST(count(CASE WHEN answered THEN 1 END) AS DOUBLE) / count(*) AS answer_rate,
  CAST(count(CASE WHEN abandoned THEN 1 END) AS DOUBLE) / count(*) AS abandonment_rate,
  percentile_exact(CASE WHEN answered THEN wait_s END, 0.5) AS wait_p50_s,
  percentile_exact(CASE WHEN answered THEN wait_s END, 0.9) AS wait_p90_s,
  CAST(count(CASE WHEN answered_within_30s THEN 1 END) AS DOUBLE) / count(*) AS service_level,
  0.85 AS service_level_target
FROM contacts
WHERE channel = 'phone'
GROUP BY month, source
ORDER BY month, source
