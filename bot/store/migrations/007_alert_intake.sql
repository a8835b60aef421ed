-- 007_alert_intake: the alert intake decides what a notification means in the same
-- statement that records it (an upsert), and keeps that decision on the group.
ALTER TABLE alert_groups ADD COLUMN last_action text;
