-- contacts_by_month: how many contacts (calls and chats) each line received, per
-- month and channel, from how many families, and how many out of service hours
-- (Monday-Saturday 08:00-18:00 Europe/Rome).
-- Parameters: the period (--year or --from/--to, local dates), --source.
-- Keys: month ('YYYY-MM', month of call.received / chat.opened), source, channel
-- (phone | whatsapp | webchat).
SELECT
  month,
  source,
  channel,
  count(*) AS contacts,
  count(DISTINCT family) AS families,
  count(CASE WHEN out_of_hours THEN 1 END) AS out_of_hours,
  CAST(count(CASE WHEN out_of_hours THEN 1 END) AS DOUBLE) / count(*) AS out_of_hours_share
FROM contacts
GROUP BY month, source, channel
ORDER BY month, source, channel
