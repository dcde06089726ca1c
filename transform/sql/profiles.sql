-- profiles: one row per family, its profile merged from every family.profiled event
-- dated up to the end of the period (EVENTS.md attribution rules): each field takes the
-- latest value that carried it ("later wins"), and territory (comune, nil, municipio)
-- comes whole from the latest profile that carried a territory, so a family that moved
-- never mixes two addresses. A Milan NIL without a Municipio gets the NIL's Municipio
-- from the reference table `nil`. Flags go through last_value as TINYINT and back:
-- the same value, and DataFusion's ordered last_value is ~10x faster on integers than
-- on booleans (55.x has no grouped accumulator for booleans).
-- Parameters: {{to}} (last local date of the period).
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
FROM (
  SELECT
    family,
    last_value(comune ORDER BY at_us, "offset") FILTER (WHERE has_territory) AS comune,
    last_value(nil ORDER BY at_us, "offset") FILTER (WHERE has_territory) AS nil,
    last_value(municipio ORDER BY at_us, "offset") FILTER (WHERE has_territory) AS municipio_reported,
    last_value(stage ORDER BY at_us, "offset") FILTER (WHERE stage IS NOT NULL) AS stage,
    CAST(last_value(CAST(first_child AS TINYINT) ORDER BY at_us, "offset") FILTER (WHERE first_child IS NOT NULL) AS BOOLEAN) AS first_child,
    CAST(last_value(CAST(single_parent AS TINYINT) ORDER BY at_us, "offset") FILTER (WHERE single_parent IS NOT NULL) AS BOOLEAN) AS single_parent,
    CAST(last_value(CAST(family_network AS TINYINT) ORDER BY at_us, "offset") FILTER (WHERE family_network IS NOT NULL) AS BOOLEAN) AS family_network,
    last_value(language ORDER BY at_us, "offset") FILTER (WHERE language IS NOT NULL) AS language,
    CAST(last_value(CAST(interpreter_needed AS TINYINT) ORDER BY at_us, "offset") FILTER (WHERE interpreter_needed IS NOT NULL) AS BOOLEAN) AS interpreter_needed,
    CAST(last_value(CAST(arrived_last_2y AS TINYINT) ORDER BY at_us, "offset") FILTER (WHERE arrived_last_2y IS NOT NULL) AS BOOLEAN) AS arrived_last_2y,
    CAST(last_value(CAST(has_pediatrician AS TINYINT) ORDER BY at_us, "offset") FILTER (WHERE has_pediatrician IS NOT NULL) AS BOOLEAN) AS has_pediatrician,
    max(at) AS profiled_at,
    count(*) AS profiles
  FROM scoped_events
  WHERE type = 'family.profiled' AND event_date <= '{{to}}'
  GROUP BY family
) p
LEFT JOIN nil n ON p.nil = n.nil AND p.comune = '015146'
