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
-- stage and territory come from the family's profile as of the end of the period: the
-- latest profile's (carried by `need_base`) unless the family was profiled again after
-- the period end, then its profile folded up to it (`profiles_to`).
-- The latest version of each need, its latest referral and that referral's state come
-- from `need_base`, with the verdict when no option changes it (`settled_*`); for a need
-- whose referral is open, no_callback is decided here, as in `referral_state`, else
-- `open_reason` applies.
-- Parameters: {{from}}, {{to}}, {{as_of_us}}, {{target_us}} (the period end also reaches
-- it through `profiles`).
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
    nb.month,
    nb.referral_id,
    nb.referrals,
    nb.referral_closing_outcome AS closing_outcome,
    nb.stage,
    nb.comune,
    nb.nil,
    nb.municipio,
    nb.last_profile_date,
    nb.settled_status,
    nb.settled_reason,
    nb.open_reason,
    nb.settled_status IS NULL AND nb.referral_first_reached_us IS NULL
      AND {{as_of_us}} - nb.referral_created_us > {{target_us}} AS no_callback
  FROM need_base nb
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
  CASE
    WHEN j.settled_status IS NOT NULL THEN j.settled_status
    WHEN j.no_callback OR j.open_reason IS NOT NULL THEN 'unmet'
    ELSE 'open'
  END AS status,
  CASE
    WHEN j.settled_status IS NOT NULL THEN j.settled_reason
    WHEN j.no_callback THEN 'no_callback'
    ELSE j.open_reason
  END AS reason,
  CASE WHEN j.last_profile_date > '{{to}}' THEN pt.stage ELSE j.stage END AS stage,
  CASE WHEN j.last_profile_date > '{{to}}' THEN pt.comune ELSE j.comune END AS comune,
  CASE WHEN j.last_profile_date > '{{to}}' THEN pt.nil ELSE j.nil END AS nil,
  CASE WHEN j.last_profile_date > '{{to}}' THEN pt.municipio ELSE j.municipio END AS municipio
FROM j
LEFT JOIN profiles_to pt ON pt.family = j.family AND j.last_profile_date > '{{to}}'
