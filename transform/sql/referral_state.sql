-- referral_state: every referral ever created (whatever the period), with its callbacks,
-- appointments and closing (`referral_base`), and what the callback target decides:
-- - callback_within_target: reached, and the first reached callback came within the
--   target of referral.created;
-- - no_callback: still open, never reached, and more than the callback target has
--   passed between referral.created and the as-of instant.
-- Parameters: {{as_of_us}}, {{target_us}} (callback target in microseconds).
SELECT
  referral_id,
  source,
  contact_id,
  family,
  created_at,
  created_us,
  created_local,
  created_date,
  month,
  referred_to,
  urgency,
  need_ids,
  first_reached_at,
  reached,
  hours_to_callback,
  coalesce(first_reached_us - created_us <= {{target_us}}, false) AS callback_within_target,
  callbacks,
  appointments_booked,
  appointments_attended,
  appointments_missed,
  latest_appointment_status,
  closing_outcome,
  closed_at,
  closed,
  (closing_outcome IS NULL AND first_reached_us IS NULL
     AND {{as_of_us}} - created_us > {{target_us}}) AS no_callback
FROM referral_base
