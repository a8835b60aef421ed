-- 003_alerts: alert groups and their notifications, storms, incidents keyed by any
-- subject (an alert group, an org/project scope), and Slack posts keyed by namespace.

-- Incidents: a generic subject key. /recon threads key by correlation or app instance
-- id; alert threads by their alert group (each alert thread is one incident).
ALTER TABLE incidents DROP CONSTRAINT incidents_subject_kind_check;
ALTER TABLE incidents ADD CONSTRAINT incidents_subject_kind_check
    CHECK (subject_kind IN ('correlation_id', 'app_instance_id', 'scope', 'alert_group'));
ALTER TABLE incidents ADD COLUMN subject_key text;
UPDATE incidents SET subject_key = coalesce(correlation_id, app_instance_id);
ALTER TABLE incidents ALTER COLUMN subject_key SET NOT NULL;
DROP INDEX incidents_one_open_per_subject;
CREATE UNIQUE INDEX incidents_one_open_per_subject ON incidents (subject_kind, subject_key) WHERE status = 'open';

-- Slack posts belong to a namespace ("job:42" for a /recon job, "alert:7:1" for an
-- alert group's thread), so whichever job posts for an alert group, a message is posted
-- once.
ALTER TABLE slack_posts ADD COLUMN namespace text;
UPDATE slack_posts SET namespace = 'job:' || job_id;
ALTER TABLE slack_posts ALTER COLUMN namespace SET NOT NULL;
ALTER TABLE slack_posts DROP CONSTRAINT slack_posts_pkey;
ALTER TABLE slack_posts ALTER COLUMN job_id DROP NOT NULL;
ALTER TABLE slack_posts ADD PRIMARY KEY (namespace, post_key);

-- A storm: many alert groups opening in one channel at once. One summary message in the
-- channel; each group triaged in its thread, in order of severity.
CREATE TABLE alert_storms (
    storm_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel     text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    last_joined timestamptz NOT NULL DEFAULT now(),
    summary_ts  text
);
CREATE INDEX alert_storms_channel ON alert_storms (channel, last_joined DESC);

-- One row per alert group (Alertmanager groupKey, Grafana groupKey or fingerprint, or a
-- Slack alert post). generation grows when a group fires again after the reopen window:
-- it then gets a new thread.
CREATE TABLE alert_groups (
    group_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source         text NOT NULL CHECK (source IN ('alertmanager', 'grafana', 'slack')),
    group_key      text NOT NULL,
    status         text NOT NULL CHECK (status IN ('firing', 'resolved')),
    alertname      text,
    severity       text NOT NULL DEFAULT 'none',
    labels         jsonb NOT NULL DEFAULT '{}'::jsonb,
    annotations    jsonb NOT NULL DEFAULT '{}'::jsonb,
    subject        jsonb NOT NULL DEFAULT '{}'::jsonb,
    channel        text,
    route          text,
    generation     integer NOT NULL DEFAULT 1,
    storm_id       bigint REFERENCES alert_storms,
    anchor_ts      text,      -- the group's own message (a parent, or a reply in a storm thread)
    thread_ts      text,      -- where the group's replies go
    incident_id    text REFERENCES incidents ON DELETE SET NULL,
    verdict        jsonb,     -- the last diagnosis's verdict, to redraw the group's message
    notifications  integer NOT NULL DEFAULT 0,
    alerts_firing  integer NOT NULL DEFAULT 0,
    first_seen     timestamptz NOT NULL DEFAULT now(),
    last_seen      timestamptz NOT NULL DEFAULT now(),
    fired_at       timestamptz NOT NULL DEFAULT now(),
    resolved_at    timestamptz,
    UNIQUE (source, group_key)
);
CREATE INDEX alert_groups_channel_fired ON alert_groups (channel, fired_at DESC);

-- Every notification as received (append-only), and what it meant for its group.
CREATE TABLE alert_notifications (
    notification_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_id        bigint NOT NULL REFERENCES alert_groups ON DELETE CASCADE,
    generation      integer NOT NULL,
    action          text NOT NULL CHECK (action IN ('open', 'repeat', 'resolve', 'refire')),
    status          text NOT NULL,
    alerts          integer NOT NULL,
    payload         jsonb NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    handled_at      timestamptz
);
CREATE INDEX alert_notifications_unhandled ON alert_notifications (group_id, notification_id)
    WHERE handled_at IS NULL;
