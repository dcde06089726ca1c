-- needs: one row per need recorded in the period (local dates {{from}}..{{to}}; a
-- need_id recorded twice keeps its latest version), with its final status and, when
-- unmet, its reason, by the precedence rules of EVENTS.md:
--  1. first-level outcome no_resource / waiting_list / not_eligible: unmet, that reason;
--  2. else the latest referral listing the need (by referral.created time): if closed,
--     resolved -> met, declined -> declined (reported apart), any other outcome ->
--     unmet with that reason;
--  3. else, while that referral is open: no_callback (never reached and the callback
--     target has passed as of the as-of instant) -> unmet 'no_callback'; else its
--     latest appointment missed -> unmet 'missed_appointment'; else open;
--  4. a need with no referral and no unmet first-level outcome is met.
-- stage and territory come from the family's profile as of the end of the period.
-- The latest version of each need and its latest referral come from `need_base`, the
-- referral's state from `referral_state`.
-- Parameters: {{from}}, {{to}} (the callback target and as-of instant reach it through
-- `referral_state`, the period end through `profiles`).
WITH j AS (
  SELECT
    nb.need_id,
    nb.contact_id,
    nb.family,
    nb.source,
    nb.category,
    nb.outcome AS first_level_outcome,
    nb.resource,
    nb.at AS recorded_at,
    nb.at_local AS recorded_local,
    nb.event_date AS recorded_date,
    substr(nb.event_date, 1, 7) AS month,
    nb.referral_id,
    nb.referrals,
    r.closing_outcome,
    r.no_callback,
    r.latest_appointment_status,
    CASE
      WHEN nb.outcome IN ('no_resource', 'waiting_list', 'not_eligible') THEN nb.outcome
      WHEN r.closing_outcome IS NOT NULL THEN r.closing_outcome
      WHEN nb.referral_id IS NULL THEN 'resolved'
      WHEN r.no_callback THEN 'no_callback'
      WHEN r.latest_appointment_status = 'missed' THEN 'missed_appointment'
      ELSE 'open'
    END AS verdict
  FROM need_base nb
  LEFT JOIN referral_state r ON r.referral_id = nb.referral_id
  WHERE nb.event_date >= '{{from}}' AND nb.event_date <= '{{to}}'
)
SELECT
  j.need_id,
  j.contact_id,
  j.family,
  j.source,
  j.category,
  j.first_level_outcome,
  j.resource,
  j.recorded_at,
  j.recorded_local,
  j.recorded_date,
  j.month,
  j.referral_id,
  j.referrals,
  j.closing_outcome,
  CASE j.verdict
    WHEN 'resolved' THEN 'met'
    WHEN 'declined' THEN 'declined'
    WHEN 'open' THEN 'open'
    ELSE 'unmet'
  END AS status,
  CASE WHEN j.verdict NOT IN ('resolved', 'declined', 'open') THEN j.verdict END AS reason,
  p.stage,
  p.comune,
  p.nil,
  p.municipio
FROM j
LEFT JOIN profiles p ON p.family = j.family
