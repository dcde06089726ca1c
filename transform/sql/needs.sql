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
-- A need's latest version is the last of its rows ordered by need_id, then (at, offset):
-- the row whose next row is another need's (or that is the last row of all). One ordered
-- window over every need is much cheaper in DataFusion than one partition per need.
-- Parameters: {{from}}, {{to}}.
WITH nr AS (
  SELECT * FROM (
    SELECT
      need_id, source, contact_id, family, category, outcome, resource, at, at_local, event_date,
      lead(need_id) OVER (ORDER BY need_id, at_us, "offset") AS next_need_id,
      lead(at_us) OVER (ORDER BY need_id, at_us, "offset") AS next_at_us
    FROM scoped_events
    WHERE type = 'need.recorded'
  ) WHERE (next_need_id IS DISTINCT FROM need_id) OR next_at_us IS NULL
),
link AS (
  SELECT referral_id, created_us, unnest(need_ids) AS need_id
  FROM referral_state
),
lr AS (
  SELECT
    need_id,
    last_value(referral_id ORDER BY created_us, referral_id) AS referral_id,
    count(*) AS referrals
  FROM link
  GROUP BY need_id
),
j AS (
  SELECT
    nr.need_id,
    nr.contact_id,
    nr.family,
    nr.source,
    nr.category,
    nr.outcome AS first_level_outcome,
    nr.resource,
    nr.at AS recorded_at,
    nr.at_local AS recorded_local,
    nr.event_date AS recorded_date,
    substr(nr.event_date, 1, 7) AS month,
    lr.referral_id,
    coalesce(lr.referrals, 0) AS referrals,
    r.closing_outcome,
    r.no_callback,
    r.latest_appointment_status,
    CASE
      WHEN nr.outcome IN ('no_resource', 'waiting_list', 'not_eligible') THEN nr.outcome
      WHEN r.closing_outcome IS NOT NULL THEN r.closing_outcome
      WHEN lr.referral_id IS NULL THEN 'resolved'
      WHEN r.no_callback THEN 'no_callback'
      WHEN r.latest_appointment_status = 'missed' THEN 'missed_appointment'
      ELSE 'open'
    END AS verdict
  FROM nr
  LEFT JOIN lr ON lr.need_id = nr.need_id
  LEFT JOIN referral_state r ON r.referral_id = lr.referral_id
  WHERE nr.event_date >= '{{from}}' AND nr.event_date <= '{{to}}'
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
