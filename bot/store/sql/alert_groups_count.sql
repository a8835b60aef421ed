SELECT count(*)::int AS groups, count(anchor_ts)::int AS threads FROM alert_groups
