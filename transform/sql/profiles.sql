-- profiles: one row per family, its profile merged from every family.profiled event
-- dated up to the end of the period (EVENTS.md attribution rules): each field takes the
-- latest value that carried it ("later wins"), and territory (comune, nil, municipio)
-- comes whole from the latest profile that carried a territory, so a family that moved
-- never mixes two addresses. A Milan NIL without a Municipio gets the NIL's Municipio
-- from the reference table `nil`.
-- "Latest" is by (at, offset). Rather than ordered last_value aggregates (slow in
-- DataFusion on strings and booleans), each event gets its rank `rn` in that order,
-- and each field the greatest of a key that sorts by rank and carries the value: an
-- integer rn * 2 + flag for the flags, the rank zero-padded to 12 digits followed by
-- the value for strings (territory: its three fields behind one key, each marked 'v'
-- value or 'n' null and separated by the unit separator, chr(31), which no code holds).
-- Parameters: {{to}} (last local date of the period).
WITH e AS (
  SELECT
    family, has_territory, comune, nil, municipio, stage, language, first_child,
    single_parent, family_network, interpreter_needed, arrived_last_2y, has_pediatrician, at,
    row_number() OVER (ORDER BY at_us, "offset") AS rn
  FROM scoped_events
  WHERE type = 'family.profiled' AND event_date <= '{{to}}'
),
g AS (
  SELECT
    family,
    max(CASE WHEN has_territory THEN lpad(CAST(rn AS VARCHAR), 12, '0')
          || coalesce('v' || comune, 'n') || chr(31)
          || coalesce('v' || nil, 'n') || chr(31)
          || coalesce('v' || municipio, 'n') END) AS territory_k,
    max(lpad(CAST(rn AS VARCHAR), 12, '0') || stage) AS stage_k,
    max(lpad(CAST(rn AS VARCHAR), 12, '0') || language) AS language_k,
    max(rn * 2 + CAST(first_child AS BIGINT)) AS first_child_k,
    max(rn * 2 + CAST(single_parent AS BIGINT)) AS single_parent_k,
    max(rn * 2 + CAST(family_network AS BIGINT)) AS family_network_k,
    max(rn * 2 + CAST(interpreter_needed AS BIGINT)) AS interpreter_needed_k,
    max(rn * 2 + CAST(arrived_last_2y AS BIGINT)) AS arrived_last_2y_k,
    max(rn * 2 + CAST(has_pediatrician AS BIGINT)) AS has_pediatrician_k,
    max(at) AS profiled_at,
    count(*) AS profiles
  FROM e
  GROUP BY family
),
t AS (
  SELECT
    g.*,
    substr(split_part(territory_k, chr(31), 1), 13) AS comune_v,
    split_part(territory_k, chr(31), 2) AS nil_v,
    split_part(territory_k, chr(31), 3) AS municipio_v
  FROM g
),
p AS (
  SELECT
    family,
    CASE WHEN substr(comune_v, 1, 1) = 'v' THEN substr(comune_v, 2) END AS comune,
    CASE WHEN substr(nil_v, 1, 1) = 'v' THEN CAST(substr(nil_v, 2) AS INT) END AS nil,
    CASE WHEN substr(municipio_v, 1, 1) = 'v' THEN CAST(substr(municipio_v, 2) AS INT) END AS municipio_reported,
    substr(stage_k, 13) AS stage,
    first_child_k % 2 = 1 AS first_child,
    single_parent_k % 2 = 1 AS single_parent,
    family_network_k % 2 = 1 AS family_network,
    substr(language_k, 13) AS language,
    interpreter_needed_k % 2 = 1 AS interpreter_needed,
    arrived_last_2y_k % 2 = 1 AS arrived_last_2y,
    has_pediatrician_k % 2 = 1 AS has_pediatrician,
    profiled_at,
    profiles
  FROM t
)
SELECT
  p.family,
  p.comune,
  p.nil,
  coalesce(p.municipio_reported, CASE WHEN p.comune = '015146' THEN n.municipio END) AS municipio,
  p.stage,
  p.first_child,
  p.single_parent,
  p.family_network,
  p.language,
  p.interpreter_needed,
  p.arrived_last_2y,
  p.has_pediatrician,
  p.profiled_at,
  p.profiles
FROM p
LEFT JOIN nil n ON p.nil = n.nil AND p.comune = '015146'
