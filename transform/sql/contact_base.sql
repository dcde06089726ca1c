-- contact_base: every contact (one call.received or chat.opened, one contact_id) in the
-- log, whatever its date, with what happened to it and the family's earlier contacts:
-- `repeat_contact` (another contact of the same family in the previous 30 days) and
-- `third_within_30d` (this contact and the two before it fall within 30 days: the
-- family has three or more contacts within 30 days). A base projection: it depends only
-- on the log, the source and the as-of instant, not on the period or the thresholds, so
-- it is persisted once per commit and shared by every period (`contact_history` is this
-- view up to the end of a period: a contact's earlier contacts are all earlier, so
-- cutting the later ones off changes no row that remains).
-- It also carries the family's territory from `profile_base` (its latest profile) and
-- `last_profile_date`, the date of that profile: `contacts` takes the territory from
-- here for every family not profiled again after the period end (all of them when the
-- period ends on or after the latest event), so it joins no profile table of a million
-- families.
-- The received instant, local time and date are folded once (received_at and
-- received_date are derived from them exactly: `at` is `at_us` as a timestamp, the
-- `event_date` of an event is the date of its `at_local`). The family's earlier contacts
-- are read with lag() over every contact ordered by family, then time: the same as a
-- window partitioned by family (a row's neighbour only counts when it is the same
-- family's), and much cheaper in DataFusion than one window partition per family.
-- The time buckets `contacts` reports (month, ISO weekday, hour of the local time) are
-- computed here once per commit rather than by every question.
-- Parameters: none (the source and as-of instant are applied by `scoped_events`).
WITH c AS (
  SELECT
    source,
    contact_id,
    min(CASE WHEN type IN ('call.received', 'chat.opened') THEN at_us END) AS received_us,
    min(CASE WHEN type IN ('call.received', 'chat.opened') THEN at_local END) AS received_local,
    min(CASE WHEN type IN ('call.received', 'chat.opened') THEN family END) AS family,
    min(CASE WHEN type = 'call.received' THEN 'phone' WHEN type = 'chat.opened' THEN channel END) AS channel,
    bool_or(type = 'call.answered') AS has_answer,
    min(CASE WHEN type = 'call.answered' THEN wait_s END) AS answer_wait_s,
    bool_or(type = 'call.abandoned') AS has_abandon,
    min(CASE WHEN type = 'call.abandoned' THEN wait_s END) AS abandon_wait_s,
    max(CASE WHEN type = 'call.ended' THEN duration_s END) AS duration_s,
    count(CASE WHEN type = 'referral.created' THEN 1 END) AS referrals
  FROM scoped_events
  WHERE type IN ('call.received', 'call.answered', 'call.abandoned', 'call.ended',
                 'chat.opened', 'referral.created')
  GROUP BY source, contact_id
),
d AS (
  SELECT
    *,
    arrow_cast(received_us, 'Timestamp(Microsecond, Some("UTC"))') AS received_at,
    CAST(CAST(received_local AS DATE) AS VARCHAR) AS received_date
  FROM c
  WHERE received_us IS NOT NULL
),
o AS (
  SELECT
    *,
    lag(family, 1) OVER (ORDER BY family, received_us, contact_id) AS family_1,
    lag(received_us, 1) OVER (ORDER BY family, received_us, contact_id) AS received_us_1,
    lag(family, 2) OVER (ORDER BY family, received_us, contact_id) AS family_2,
    lag(received_us, 2) OVER (ORDER BY family, received_us, contact_id) AS received_us_2
  FROM d
)
SELECT
  o.contact_id,
  o.source,
  o.channel,
  o.family,
  o.received_at,
  o.received_local,
  o.received_date,
  o.received_us,
  substr(o.received_date, 1, 7) AS month,
  CAST(date_part('isodow', o.received_local) AS INT) AS weekday,
  CAST(date_part('hour', o.received_local) AS INT) AS hour,
  CASE WHEN o.channel = 'phone' THEN o.has_answer END AS answered,
  CASE WHEN o.channel = 'phone' THEN (o.has_abandon AND NOT o.has_answer) END AS abandoned,
  CASE WHEN o.has_answer THEN o.answer_wait_s ELSE o.abandon_wait_s END AS wait_s,
  CASE WHEN o.channel = 'phone' THEN coalesce(o.has_answer AND o.answer_wait_s <= 30, false) END AS answered_within_30s,
  o.duration_s,
  o.referrals,
  o.referrals > 0 AS escalated,
  coalesce((o.family_1 IS NOT DISTINCT FROM o.family) AND o.received_us - o.received_us_1 <= 2592000000000, false) AS repeat_contact,
  coalesce((o.family_2 IS NOT DISTINCT FROM o.family) AND o.received_us - o.received_us_2 <= 2592000000000, false) AS third_within_30d,
  p.comune,
  p.nil,
  p.municipio,
  p.last_profile_date
FROM o
LEFT JOIN profile_base p ON p.family = o.family
