UPDATE alert_groups SET verdict = $2 WHERE group_id = $1
