-- isolation_risk_flags: how common each isolation-risk flag is among the families in
-- contact in the period (EVENTS.md identifiers: single_parent, no_family_network,
-- language_barrier, arrived_last_2y, first_child, no_pediatrician, psychological_need,
-- economic_need, repeat_contacts): families with the flag, of how many, and the share.
-- A family can carry several flags, so the rows do not add up to a total.
-- Parameters: the period (--year or --from/--to), --source.
-- Keys: flag.
WITH a AS (
  SELECT
    count(*) AS of_families,
    count(CASE WHEN single_parent THEN 1 END) AS single_parent,
    count(CASE WHEN no_family_network THEN 1 END) AS no_family_network,
    count(CASE WHEN language_barrier THEN 1 END) AS language_barrier,
    count(CASE WHEN arrived_last_2y THEN 1 END) AS arrived_last_2y,
    count(CASE WHEN first_child THEN 1 END) AS first_child,
    count(CASE WHEN no_pediatrician THEN 1 END) AS no_pediatrician,
    count(CASE WHEN psychological_need THEN 1 END) AS psychological_need,
    count(CASE WHEN economic_need THEN 1 END) AS economic_need,
    count(CASE WHEN repeat_contacts THEN 1 END) AS repeat_contacts
  FROM families
),
u AS (
  SELECT
    unnest(make_array('single_parent', 'no_family_network', 'language_barrier',
      'arrived_last_2y', 'first_child', 'no_pediatrician', 'psychological_need',
      'economic_need', 'repeat_contacts')) AS flag,
    unnest(make_array(single_parent, no_family_network, language_barrier,
      arrived_last_2y, first_child, no_pediatrician, psychological_need,
      economic_need, repeat_contacts)) AS families,
    of_families
  FROM a
)
SELECT
  flag,
  families,
  of_families,
  CASE WHEN of_families > 0 THEN CAST(families AS DOUBLE) / of_families END AS share
FROM u
ORDER BY flag
