-- referrals: one row per referral created in the period (local dates {{from}}..{{to}});
-- the columns of referral_state.
-- Parameters: {{from}}, {{to}}.
SELECT *
FROM referral_state
WHERE created_date >= '{{from}}' AND created_date <= '{{to}}'
