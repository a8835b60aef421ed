-- 011_alert_group_key_bounded: a group key longer than 1024 bytes is kept bounded.
--
-- alert_groups is unique on (source, group_key), and a btree index takes at most about
-- 2700 bytes per row: a longer key (an Alertmanager groupKey grows with the route's
-- matchers and the group's labels) failed with SQLSTATE 54000 on every retry. From this
-- version on the intake stores bot.alerts.parse.bounded_group_key of the key: the key
-- itself up to 1024 bytes of UTF-8, else its first 200 characters, '…sha256:' and the
-- hex SHA-256 of the whole (the payload keeps the key as received). The keys stored
-- before that are longer than 1024 bytes (but fitted) become the same, so that their
-- groups' next notifications still find them.
UPDATE alert_groups
SET group_key = left(group_key, 200) || '…sha256:' || encode(sha256(convert_to(group_key, 'UTF8')), 'hex')
WHERE octet_length(convert_to(group_key, 'UTF8')) > 1024;
