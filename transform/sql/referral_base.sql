-- referral_base: every referral ever created (whatever the period), with its callbacks,
-- appointments and closing: what depends only on the log, the source and the as-of
-- instant (a base projection, persisted once per commit). `referral_state` adds what the
-- callback target decides. `needs` judges a need by the latest referral listing it,
-- which may predate the period; `referrals` is `referral_state` in the period.
-- - first reached callback: the earliest referral.callback with reached = true;
--   hours_to_callback = that minus referral.created, in hours;
-- - appointments: appointment.booked events naming the referral; each appointment's
--   status is its latest attended/missed event, else 'booked'; the latest appointment
--   is the one booked last;
-- - closing: the latest referral.closed (its outcome).
-- A referral.created seen twice keeps its latest version (by at, then offset): the last
-- of its rows ordered by referral_id, then time (one ordered window, as in `needs`).
-- Parameters: none (the source and as-of instant are applied by `scoped_events`).
WITH rc AS (
  SELECT * FROM (
    SELECT
      referral_id, source, contact_id, family, at, at_us, at_local, event_date,
      need_ids, referred_to, urgency,
      lead(referral_id) OVER (ORDER BY referral_id, at_us, "offset") AS next_referral_id,
      lead(at_us) OVER (ORDER BY referral_id, at_us, "offset") AS next_at_us
    FROM scoped_events
    WHERE type = 'referral.created'
  ) WHERE (next_referral_id IS DISTINCT FROM referral_id) OR next_at_us IS NULL
),
cb AS (
  SELECT
    referral_id,
    min(CASE WHEN reached THEN at_us END) AS first_reached_us,
    min(CASE WHEN reached THEN at END) AS first_reached_at,
    count(*) AS callbacks
  FROM scoped_events
  WHERE type = 'referral.callback'
  GROUP BY referral_id
),
ab AS (
  SELECT
    appointment_id,
    last_value(referral_id ORDER BY at_us, "offset") AS referral_id,
    max(at_us) AS booked_us
  FROM scoped_events
  WHERE type = 'appointment.booked'
  GROUP BY appointment_id
),
ao AS (
  SELECT
    appointment_id,
    last_value(type ORDER BY at_us, "offset") AS last_type
  FROM scoped_events
  WHERE type IN ('appointment.attended', 'appointment.missed')
  GROUP BY appointment_id
),
ra AS (
  SELECT
    ab.referral_id,
    count(*) AS booked,
    count(CASE WHEN ao.last_type = 'appointment.attended' THEN 1 END) AS attended,
    count(CASE WHEN ao.last_type = 'appointment.missed' THEN 1 END) AS missed,
    last_value(CASE ao.last_type WHEN 'appointment.attended' THEN 'attended'
                                 WHEN 'appointment.missed' THEN 'missed'
                                 ELSE 'booked' END
               ORDER BY ab.booked_us, ab.appointment_id) AS latest_status
  FROM ab LEFT JOIN ao ON ao.appointment_id = ab.appointment_id
  WHERE ab.referral_id IS NOT NULL
  GROUP BY ab.referral_id
),
cl AS (
  SELECT
    referral_id,
    last_value(outcome ORDER BY at_us, "offset") AS closing_outcome,
    max(at) AS closed_at
  FROM scoped_events
  WHERE type = 'referral.closed'
  GROUP BY referral_id
)
SELECT
  rc.referral_id,
  rc.source,
  rc.contact_id,
  rc.family,
  rc.at AS created_at,
  rc.at_us AS created_us,
  rc.at_local AS created_local,
  rc.event_date AS created_date,
  substr(rc.event_date, 1, 7) AS month,
  rc.referred_to,
  rc.urgency,
  rc.need_ids,
  cb.first_reached_at,
  cb.first_reached_us,
  cb.first_reached_us IS NOT NULL AS reached,
  (cb.first_reached_us - rc.at_us) / 3600000000.0 AS hours_to_callback,
  coalesce(cb.callbacks, 0) AS callbacks,
  coalesce(ra.booked, 0) AS appointments_booked,
  coalesce(ra.attended, 0) AS appointments_attended,
  coalesce(ra.missed, 0) AS appointments_missed,
  ra.latest_status AS latest_appointment_status,
  cl.closing_outcome,
  cl.closed_at,
  cl.closing_outcome IS NOT NULL AS closed
FROM rc
LEFT JOIN cb ON cb.referral_id = rc.referral_id
LEFT JOIN ra ON ra.referral_id = rc.referral_id
LEFT JOIN cl ON cl.referral_id = rc.referral_id
