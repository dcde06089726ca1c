-- contacts_by_weekday_hour: when families get in touch: contacts per weekday and hour
-- of the day (Europe/Rome), every one of the 7 x 24 cells present (0 when none).
-- Parameters: the period (--year or --from/--to), --source.
-- Keys: weekday (ISO: 1 = Monday .. 7 = Sunday), hour (0-23, the hour the contact began).
WITH grid AS (
  SELECT w.value AS weekday, h.value AS hour
  FROM generate_series(1, 7) w CROSS JOIN generate_series(0, 23) h
),
c AS (
  SELECT weekday, hour, count(*) AS contacts
  FROM contacts
  GROUP BY weekday, hour
)
SELECT
  CAST(grid.weekday AS INT) AS weekday,
  CAST(grid.hour AS INT) AS hour,
  coalesce(c.contacts, 0) AS contacts
FROM grid
LEFT JOIN c ON c.weekday = grid.weekday AND c.hour = grid.hour
ORDER BY weekday, hour
