-- isolation_risk_by_municipio: isolation_risk_by_nil one level up: families in contact
-- and high-risk families per Milan Municipio ('unknown' when neither the profile nor
-- its NIL gives one), per 1,000 live births of the Municipio (its NIL's ds205 births
-- summed) with a 95% exact Poisson interval on the high-risk rate.
-- Parameters: the period (--year or --from/--to), --source, --risk-threshold;
-- {{births_year}}.
-- Keys: comune, municipio.
WITH f AS (
  SELECT
    coalesce(comune, 'unknown') AS comune,
    coalesce(CAST(municipio AS VARCHAR), 'unknown') AS municipio,
    municipio AS municipio_id,
    count(*) AS families,
    count(CASE WHEN high_risk THEN 1 END) AS high_risk
  FROM families
  GROUP BY coalesce(comune, 'unknown'), coalesce(CAST(municipio AS VARCHAR), 'unknown'), municipio
),
b AS (
  SELECT r.municipio, sum(b.births) AS births
  FROM births b JOIN nil r ON r.nil = b.nil
  WHERE b.year = {{births_year}} AND r.municipio IS NOT NULL
  GROUP BY r.municipio
)
SELECT
  f.comune,
  f.municipio,
  f.families,
  f.high_risk,
  CAST(f.high_risk AS DOUBLE) / f.families AS high_risk_share,
  b.births,
  f.families * 1000.0 / b.births AS families_per_1000_births,
  f.high_risk * 1000.0 / b.births AS high_risk_per_1000_births,
  poisson_ci_low(f.high_risk) * 1000.0 / b.births AS ci_low,
  poisson_ci_high(f.high_risk) * 1000.0 / b.births AS ci_high,
  CAST({{births_year}} AS INT) AS births_year
FROM f
LEFT JOIN b ON f.comune = '015146' AND b.municipio = f.municipio_id
ORDER BY f.comune, f.municipio_id NULLS LAST
