-- need_base: the latest version of every need ever recorded (a need_id recorded twice
-- keeps its latest version), with the latest referral listing it (by referral.created
-- time, then referral_id), how many referrals list it, and that referral's state from
-- `referral_base` (created, first reached callback, closing outcome, latest
-- appointment status: what `needs` judges a need by), and the family's stage and
-- territory from its latest profile with that profile's date (`last_profile_date`;
-- see `contact_base`), and the part of the need's verdict (EVENTS.md precedence, see
-- `needs`) that no option changes: `settled_verdict` when the first-level outcome, the
-- referral's closing or the absence of a referral decides it (null while the referral
-- is open) with its `settled_status` and `settled_reason`, and `open_reason`, what an
-- open referral that is not judged no_callback gives ('missed_appointment', or null:
-- open). A base projection: it depends
-- only on the log, the source and the as-of instant (persisted once per commit);
-- `needs` judges each need of a period from it.
-- A need's latest version is the last of its rows ordered by need_id, then (at, offset):
-- the row whose next row is another need's (or that is the last row of all). One ordered
-- window over every need is much cheaper in DataFusion than one partition per need.
-- Parameters: none (the source and as-of instant are applied by `scoped_events`).
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
  FROM referral_base
),
lr AS (
  SELECT
    need_id,
    last_value(referral_id ORDER BY created_us, referral_id) AS referral_id,
    count(*) AS referrals
  FROM link
  GROUP BY need_id
),
b AS (
  SELECT
    nr.need_id,
    nr.source,
    nr.contact_id,
    nr.family,
    nr.category,
    nr.outcome,
    nr.resource,
    nr.at,
    nr.at_local,
    nr.event_date,
    substr(nr.event_date, 1, 7) AS month,
    lr.referral_id,
    coalesce(lr.referrals, 0) AS referrals,
    r.created_us AS referral_created_us,
    r.first_reached_us AS referral_first_reached_us,
    r.closing_outcome AS referral_closing_outcome,
    r.latest_appointment_status AS referral_latest_appointment_status,
    p.stage,
    p.comune,
    p.nil,
    p.municipio,
    p.last_profile_date,
    CASE
      WHEN nr.outcome IN ('no_resource', 'waiting_list', 'not_eligible') THEN nr.outcome
      WHEN r.closing_outcome IS NOT NULL THEN r.closing_outcome
      WHEN lr.referral_id IS NULL THEN 'resolved'
    END AS settled_verdict,
    CASE WHEN r.latest_appointment_status = 'missed' THEN 'missed_appointment' END AS open_reason
  FROM nr
  LEFT JOIN lr ON lr.need_id = nr.need_id
  LEFT JOIN referral_base r ON r.referral_id = lr.referral_id
  LEFT JOIN profile_base p ON p.family = nr.family
)
SELECT
  *,
  CASE
    WHEN settled_verdict = 'resolved' THEN 'met'
    WHEN settled_verdict = 'declined' THEN 'declined'
    WHEN settled_verdict = 'open' THEN 'open'
    WHEN settled_verdict IS NOT NULL THEN 'unmet'
  END AS settled_status,
  CASE WHEN settled_verdict NOT IN ('resolved', 'declined', 'open') THEN settled_verdict END AS settled_reason
FROM b
