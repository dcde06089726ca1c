-- A profile fold: one row per family, its profile merged from the family.profiled
-- events of its input (EVENTS.md attribution rules): each field takes the
-- latest value that carried it ("later wins"), and territory (comune, nil, municipio)
-- comes whole from the latest profile that carried a territory, so a family that moved
-- never mixes two addresses. A Milan NIL without a Municipio gets the NIL's Municipio
-- from the reference table `nil`.
-- "Latest" is by (at, offset), the order of `profile_events`' rank `rn`. Most families were
-- profiled once: their one event is their profile as it is. The others are folded:
-- each field takes the greatest of a key that sorts by the event's rank `rn` and
-- carries the value (rather than ordered last_value aggregates, slow in DataFusion on
-- strings and booleans): an integer rn * 2 + flag for the flags, the rank zero-padded
-- to 12 digits followed by the value for strings (territory: its three fields behind
-- one key, each marked 'v' value or 'n' null and separated by the unit separator,
-- chr(31), which no code holds).
-- last_profile_date: the local date of the family's latest profile event in the input.
-- Rendered as `profile_base` over `profile_events` (every profile of the log: a base
-- projection, persisted once per commit) and as `profiles_to` over `profile_events_to`.
-- Parameters: input, the view of ordered profile events to fold.
WITH single AS (
  SELECT
    family,
    CASE WHEN has_territory THEN comune END AS comune,
    CASE WHEN has_territory THEN nil END AS nil,
    CASE WHEN has_territory THEN municipio END AS municipio_reported,
    stage,
    first_child,
    single_parent,
    family_network,
    language,
    interpreter_needed,
    arrived_last_2y,
    has_pediatrician,
    at AS profiled_at,
    CAST(1 AS BIGINT) AS profiles,
    event_date AS last_profile_date
  FROM {{input}}
  WHERE only_profile
),
m AS (
  SELECT *, lpad(CAST(rn AS VARCHAR), 12, '0') AS k
  FROM {{input}}
  WHERE NOT only_profile
),
g AS (
  SELECT
    family,
    max(CASE WHEN has_territory THEN k
          || coalesce('v' || comune, 'n') || chr(31)
          || coalesce('v' || CAST(nil AS VARCHAR), 'n') || chr(31)
          || coalesce('v' || CAST(municipio AS VARCHAR), 'n') END) AS territory_k,
    max(k || stage) AS stage_k,
    max(k || language) AS language_k,
    max(rn * 2 + CAST(first_child AS BIGINT)) AS first_child_k,
    max(rn * 2 + CAST(single_parent AS BIGINT)) AS single_parent_k,
    max(rn * 2 + CAST(family_network AS BIGINT)) AS family_network_k,
    max(rn * 2 + CAST(interpreter_needed AS BIGINT)) AS interpreter_needed_k,
    max(rn * 2 + CAST(arrived_last_2y AS BIGINT)) AS arrived_last_2y_k,
    max(rn * 2 + CAST(has_pediatrician AS BIGINT)) AS has_pediatrician_k,
    max(at) AS profiled_at,
    count(*) AS profiles,
    max(event_date) AS last_profile_date
  FROM m
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
multi AS (
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
    profiles,
    last_profile_date
  FROM t
),
p AS (
  SELECT * FROM single
  UNION ALL
  SELECT * FROM multi
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
  p.profiles,
  p.last_profile_date
FROM p
LEFT JOIN nil n ON p.nil = n.nil AND p.comune = '015146'
