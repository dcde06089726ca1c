-- unmet_needs_by_municipio: unmet_needs_by_nil one level up: needs and unmet needs per
-- Milan Municipio (the family's, from its profile or its NIL; 'unknown' when neither),
-- per 1,000 live births of the Municipio (its NIL's ds205 births summed) with a 95%
-- exact Poisson interval; births_year says which year was used.
-- Parameters: the period (--year or --from/--to), --source, --as-of,
-- --callback-target-hours; {{births_year}}.
-- Keys: comune, municipio.

-- The needs are counted by the raw (comune, municipio) first and the few groups then
-- merged under their printed keys: the same sums, without building two key strings per
-- need (cast back to BIGINT: some engines sum BIGINTs into a wider type).
WITH g AS (
  SELECT
    comune,
    municipio,
    count(*) AS needs,
    count(CASE WHEN status = 'unmet' THEN 1 END) AS unmet
  FROM needs
  GROUP BY comune, municipio
),
n AS (
  SELECT
    coalesce(comune, 'unknown') AS comune,
    coalesce(CAST(municipio AS VARCHAR), 'unknown') AS municipio,
    municipio AS municipio_id,
    CAST(sum(needs) AS BIGINT) AS needs,
    CAST(sum(unmet) AS BIGINT) AS unmet
  FROM g
  GROUP BY coalesce(comune, 'unknown'), coalesce(CAST(municipio AS VARCHAR), 'unknown'), municipio
),
b AS (
  SELECT r.municipio, sum(b.births) AS births
  FROM births b JOIN nil r ON r.nil = b.nil
  WHERE b.year = {{births_year}} AND r.municipio IS NOT NULL
  GROUP BY r.municipio
)
SELECT
  n.comune,
  n.municipio,
  n.needs,
  n.unmet,
  CAST(n.unmet AS DOUBLE) / n.needs AS unmet_share,
  b.births,
  n.unmet * 1000.0 / b.births AS unmet_per_1000_births,
  poisson_ci_low(n.unmet) * 1000.0 / b.births AS ci_low,
  poisson_ci_high(n.unmet) * 1000.0 / b.births AS ci_high,
  CAST({{births_year}} AS INT) AS births_year
FROM n
LEFT JOIN b ON n.comune = '015146' AND b.municipio = n.municipio_id
ORDER BY n.comune, n.municipio_id NULLS LAST
