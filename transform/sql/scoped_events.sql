-- scoped_events: the events the projections see.
-- Every event of the chosen source (all sources when none is given) that happened at
-- or before the as-of instant (the latest event time in the data, or --as-of; an
-- --as-of after the latest event is rendered as the latest event time, which selects
-- the same events, so that the base projections of the commit serve it), so a rerun
-- gives the same answer. Adds `at_us`, the instant in microseconds since the
-- epoch, for arithmetic on durations. Drops the columns no projection reads: this view
-- is computed once per session and kept in memory.
-- Parameters: {{events_to_us}}, {{source_filter}}.
SELECT * EXCLUDE (simulated, ivr_path, operator, topic), arrow_cast(at, 'Int64') AS at_us
FROM events
WHERE at <= arrow_cast({{events_to_us}}, 'Timestamp(Microsecond, Some("UTC"))') {{source_filter}}
