-- contact_history: every contact received up to the end of the period, whatever its
-- start: `contact_base` cut at the period end. `contacts` is this view restricted to the
-- period.
-- Parameters: {{to}}.
SELECT * FROM contact_base WHERE received_date <= '{{to}}'
