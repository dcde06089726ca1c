-- isolation_risk_by_nil: where the families at risk of isolation live: families in
-- contact in the period and high-risk families (score >= --risk-threshold) per Milan
-- NIL (territory from the profile as of the end of the period; nil = 'unknown' when
-- none), each per 1,000 live births of the NIL (ds205) with a 95% exact Poisson
-- interval on the high-risk rate; births_year says which year's births were used.
-- Parameters: the period (--year or --from/--to), --source, --risk-threshold;
-- {{births_year}}.
-- Keys: comune, nil.
WITH f AS (
  SELECT
    coalesce(comune, 'unknown') AS comune,
    coalesce(CAST(nil AS VARCHAR), 'unknown') AS nil,
    nil AS nil_id,
    count(*) AS families,
    count(CASE WHEN high_risk THEN 1 END) AS high_risk
  FROM families
  GROUP BY coalesce(comune, 'unknown'), coalesce(CAST(nil AS VARCHAR), 'unknown'), nil
),
b AS (
  SELECT nil, births FROM births WHERE year = {{births_year}}
)
SELECT
  f.comune,
  f.nil,
  r.nil_name,
  r.municipio,
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
LEFT JOIN nil r ON f.comune = '015146' AND r.nil = f.nil_id
LEFT JOIN b ON f.comune = '015146' AND b.nil = f.nil_id
ORDER BY f.comune, f.nil_id NULLS LAST
