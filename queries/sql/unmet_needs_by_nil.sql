-- unmet_needs_by_nil: where needs stay unmet: needs and unmet needs per neighbourhood
-- (Milan NIL; the family's territory from its profile as of the end of the period;
-- nil = 'unknown' when the family has no NIL or no profile), with the unmet needs per
-- 1,000 live births of the NIL (Comune di Milano ds205) and a 95% exact Poisson
-- interval on that rate. births_year says which year's births were used (the period's
-- year, or the latest available).
-- Parameters: the period (--year or --from/--to), --source, --as-of,
-- --callback-target-hours; {{births_year}}.
-- Keys: comune, nil.

-- The needs are counted by the raw (comune, nil) first and the few groups then merged
-- under their printed keys: the same sums, without building two key strings per need
-- (cast back to BIGINT: some engines sum BIGINTs into a wider type).
WITH g AS (
  SELECT
    comune,
    nil,
    count(*) AS needs,
    count(CASE WHEN status = 'unmet' THEN 1 END) AS unmet
  FROM needs
  GROUP BY comune, nil
),
n AS (
  SELECT
    coalesce(comune, 'unknown') AS comune,
    coalesce(CAST(nil AS VARCHAR), 'unknown') AS nil,
    nil AS nil_id,
    CAST(sum(needs) AS BIGINT) AS needs,
    CAST(sum(unmet) AS BIGINT) AS unmet
  FROM g
  GROUP BY coalesce(comune, 'unknown'), coalesce(CAST(nil AS VARCHAR), 'unknown'), nil
),
b AS (
  SELECT nil, births FROM births WHERE year = {{births_year}}
)
SELECT
  n.comune,
  n.nil,
  r.nil_name,
  r.municipio,
  n.needs,
  n.unmet,
  CAST(n.unmet AS DOUBLE) / n.needs AS unmet_share,
  b.births,
  n.unmet * 1000.0 / b.births AS unmet_per_1000_births,
  poisson_ci_low(n.unmet) * 1000.0 / b.births AS ci_low,
  poisson_ci_high(n.unmet) * 1000.0 / b.births AS ci_high,
  CAST({{births_year}} AS INT) AS births_year
FROM n
LEFT JOIN nil r ON n.comune = '015146' AND r.nil = n.nil_id
LEFT JOIN b ON n.comune = '015146' AND b.nil = n.nil_id
ORDER BY n.comune, n.nil_id NULLS LAST
