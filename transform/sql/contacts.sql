-- contacts: one row per contact received in the period (local dates {{from}}..{{to}}).
-- Time buckets use Europe/Rome wall-clock time (computed in `contact_base`): month
-- 'YYYY-MM' (the first seven characters of the local date), weekday ISO 1 = Monday
-- .. 7 = Sunday, hour 0-23. Out of hours = outside Monday-Saturday 08:00-18:00 (a
-- contact at 18:00:00 is out of hours; public holidays are not known and count as
-- ordinary days). answered/abandoned/answered_within_30s are null for chats.
-- Territory (comune, nil, municipio) is the family's, from its profile as of the end
-- of the period: the latest profile's (carried by `contact_base`) unless the family was
-- profiled again after the period end, then its profile folded up to it (`profiles_to`,
-- or none if it had no profile yet). escalated = at least one referral.created carries this contact_id.
-- Parameters: {{from}}, {{to}}.
SELECT
  h.contact_id,
  h.source,
  h.channel,
  h.family,
  h.received_at,
  h.received_local,
  h.received_date,
  h.month,
  h.weekday,
  h.hour,
  h.answered,
  h.wait_s,
  h.abandoned,
  h.duration_s,
  (h.weekday = 7 OR h.hour < 8 OR h.hour >= 18) AS out_of_hours,
  h.answered_within_30s,
  h.repeat_contact,
  h.escalated,
  h.referrals,
  CASE WHEN h.last_profile_date > '{{to}}' THEN pt.comune ELSE h.comune END AS comune,
  CASE WHEN h.last_profile_date > '{{to}}' THEN pt.nil ELSE h.nil END AS nil,
  CASE WHEN h.last_profile_date > '{{to}}' THEN pt.municipio ELSE h.municipio END AS municipio
FROM contact_history h
LEFT JOIN profiles_to pt ON pt.family = h.family AND h.last_profile_date > '{{to}}'
WHERE h.received_date >= '{{from}}' AND h.received_date <= '{{to}}'
