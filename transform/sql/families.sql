-- families: one row per family with at least one contact in the period, with its
-- profile as of the end of the period and its isolation-risk flags, named as in
-- EVENTS.md (a field the profile lacks raises no flag):
--   single_parent, no_family_network (family_network = false), language_barrier
--   (interpreter needed, or language not 'it'), arrived_last_2y, first_child,
--   no_pediatrician (has_pediatrician = false), psychological_need / economic_need
--   (a need of that category recorded up to the end of the period), repeat_contacts
--   (three or more contacts within 30 days, in its history up to the end of the period).
-- The history-based flags (needs, repeat contacts) are read from `family_base`: a flag
-- holds when the date it first held is on or before the period end.
-- score = number of flags; high_risk = score >= the risk threshold.
-- contacts = its contacts in the period (the rows of `contacts`, read from
-- `contact_history` so a question about families does not build `contacts`);
-- repeat_contact_count = those of them with another contact of the family in the
-- previous 30 days.
-- Parameters: {{from}}, {{to}}, {{risk_threshold}}.
WITH fc AS (
  SELECT
    family,
    min(source) AS source,
    count(*) AS contacts,
    count(CASE WHEN repeat_contact THEN 1 END) AS repeat_contact_count,
    min(received_at) AS first_contact_at,
    max(received_at) AS last_contact_at
  FROM contact_history
  WHERE received_date >= '{{from}}'
  GROUP BY family
),
f AS (
  SELECT
    fc.family,
    fc.source,
    fc.contacts,
    fc.repeat_contact_count,
    fc.first_contact_at,
    fc.last_contact_at,
    p.comune,
    p.nil,
    p.municipio,
    p.stage,
    p.language,
    p.interpreter_needed,
    p.family_network,
    p.has_pediatrician,
    coalesce(p.single_parent, false) AS single_parent,
    coalesce(p.family_network = false, false) AS no_family_network,
    coalesce(p.interpreter_needed, false) OR coalesce(p.language <> 'it', false) AS language_barrier,
    coalesce(p.arrived_last_2y, false) AS arrived_last_2y,
    coalesce(p.first_child, false) AS first_child,
    coalesce(p.has_pediatrician = false, false) AS no_pediatrician,
    coalesce(fb.psychological_need_from <= '{{to}}', false) AS psychological_need,
    coalesce(fb.economic_need_from <= '{{to}}', false) AS economic_need,
    coalesce(fb.three_within_30d_from <= '{{to}}', false) AS repeat_contacts
  FROM fc
  LEFT JOIN profiles p ON p.family = fc.family
  LEFT JOIN family_base fb ON fb.family = fc.family
),
s AS (
  SELECT
    *,
    CAST(single_parent AS INT) + CAST(no_family_network AS INT) + CAST(language_barrier AS INT)
      + CAST(arrived_last_2y AS INT) + CAST(first_child AS INT) + CAST(no_pediatrician AS INT)
      + CAST(psychological_need AS INT) + CAST(economic_need AS INT)
      + CAST(repeat_contacts AS INT) AS score
  FROM f
)
SELECT
  *,
  score >= {{risk_threshold}} AS high_risk,
  concat_ws(',',
    CASE WHEN single_parent THEN 'single_parent' END,
    CASE WHEN no_family_network THEN 'no_family_network' END,
    CASE WHEN language_barrier THEN 'language_barrier' END,
    CASE WHEN arrived_last_2y THEN 'arrived_last_2y' END,
    CASE WHEN first_child THEN 'first_child' END,
    CASE WHEN no_pediatrician THEN 'no_pediatrician' END,
    CASE WHEN psychological_need THEN 'psychological_need' END,
    CASE WHEN economic_need THEN 'economic_need' END,
    CASE WHEN repeat_contacts THEN 'repeat_contacts' END) AS flags
FROM s
