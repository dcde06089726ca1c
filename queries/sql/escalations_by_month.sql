-- escalations_by_month: how many contacts needed the second level, per month:
-- escalation rate (contacts with at least one referral.created / contacts) and
-- first-level resolution (contacts with none / contacts, target 98%); referrals created
-- that month, time to the first reached callback (median and p90 over reached
-- referrals, hours) and the share of referrals reached within the callback target
-- (never reached counts as not within; published target 95%).
-- Parameters: the period (--year or --from/--to), --source, --callback-target-hours.
-- Keys: month (contacts: month received; referrals: month created), source.
WITH c AS (
  SELECT
    month,
    source,
    count(*) AS contacts,
    count(CASE WHEN escalated THEN 1 END) AS escalated
  FROM contacts
  GROUP BY month, source
),
r AS (
  SELECT
    month,
    source,
    count(*) AS referrals,
    count(CASE WHEN reached THEN 1 END) AS referrals_reached,
    percentile_exact(hours_to_callback, 0.5) AS callback_p50_h,
    percentile_exact(hours_to_callback, 0.9) AS callback_p90_h,
    count(CASE WHEN callback_within_target THEN 1 END) AS callback_within_target
  FROM referrals
  GROUP BY month, source
)
SELECT
  coalesce(c.month, r.month) AS month,
  coalesce(c.source, r.source) AS source,
  coalesce(c.contacts, 0) AS contacts,
  coalesce(c.escalated, 0) AS escalated,
  CAST(c.escalated AS DOUBLE) / c.contacts AS escalation_rate,
  CAST(c.contacts - c.escalated AS DOUBLE) / c.contacts AS first_level_resolution,
  0.98 AS first_level_resolution_target,
  coalesce(r.referrals, 0) AS referrals,
  coalesce(r.referrals_reached, 0) AS referrals_reached,
  r.callback_p50_h,
  r.callback_p90_h,
  coalesce(r.callback_within_target, 0) AS callback_within_target,
  CAST(r.callback_within_target AS DOUBLE) / r.referrals AS callback_within_target_share,
  0.95 AS callback_within_target_goal,
  CAST({{callback_target_hours}} AS DOUBLE) AS callback_target_hours
FROM c
FULL OUTER JOIN r ON c.month = r.month AND c.source = r.source
ORDER BY month, source
