-- contact_history: every contact (one call.received or chat.opened, one contact_id)
-- received up to the end of the period, whatever its start, with what happened to it
-- and the family's earlier contacts: `repeat_contact` (another contact of the same
-- family in the previous 30 days) and `third_within_30d` (this contact and the two
-- before it fall within 30 days: the family has three or more contacts within 30 days).
-- `contacts` is this view restricted to the period.
-- Parameters: {{to}}.
WITH c AS (
  SELECT
    source,
    contact_id,
    min(CASE WHEN type IN ('call.received', 'chat.opened') THEN at_us END) AS received_us,
    min(CASE WHEN type IN ('call.received', 'chat.opened') THEN at END) AS received_at,
    min(CASE WHEN type IN ('call.received', 'chat.opened') THEN at_local END) AS received_local,
    min(CASE WHEN type IN ('call.received', 'chat.opened') THEN event_date END) AS received_date,
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
)
SELECT
  contact_id,
  source,
  channel,
  family,
  received_at,
  received_local,
  received_date,
  received_us,
  CASE WHEN channel = 'phone' THEN has_answer END AS answered,
  CASE WHEN channel = 'phone' THEN (has_abandon AND NOT has_answer) END AS abandoned,
  CASE WHEN has_answer THEN answer_wait_s ELSE abandon_wait_s END AS wait_s,
  CASE WHEN channel = 'phone' THEN coalesce(has_answer AND answer_wait_s <= 30, false) END AS answered_within_30s,
  duration_s,
  referrals,
  referrals > 0 AS escalated,
  coalesce(received_us - lag(received_us, 1) OVER (PARTITION BY family ORDER BY received_us, contact_id)
           <= 2592000000000, false) AS repeat_contact,
  coalesce(received_us - lag(received_us, 2) OVER (PARTITION BY family ORDER BY received_us, contact_id)
           <= 2592000000000, false) AS third_within_30d
FROM c
WHERE received_us IS NOT NULL AND received_date <= '{{to}}'
