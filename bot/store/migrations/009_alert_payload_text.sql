-- 009_alert_payload_text: a notification's payload is stored as the text received,
-- uncompressed, and the database no longer parses it again.
--
-- The intake takes in a payload only after decoding and checking it (the webhook) or
-- writing it itself (an alert post: the Slack event as canonical JSON), and nothing reads
-- inside a stored payload: it is the record of what was received. In a storm that record
-- was most of the database's work: 50 notifications of 100 alerts are 2.2 MB, which the
-- json type parsed once more and TOAST compressed with pglz, for every wave. As text with
-- EXTERNAL storage the same write takes a third less of the server's CPU; the price is
-- disk (JSON compresses about 5 to 1). Read a payload as JSON with payload::json.
--
-- recon_alert_intake is 008's, the same in every statement but one: the payload goes into
-- the column as given (it.payload) instead of through a json cast.
ALTER TABLE alert_notifications ALTER COLUMN payload TYPE text;
ALTER TABLE alert_notifications ALTER COLUMN payload SET STORAGE EXTERNAL;

CREATE OR REPLACE FUNCTION recon_alert_intake(items jsonb, payloads text[], reopen_s double precision,
                                   storm_threshold integer, storm_window_s double precision,
                                   storm_gather_s double precision, notify_channel text,
                                   storm_lock_space integer)
RETURNS TABLE (o_item integer, o_action text, o_notification_id bigint, o_job_id bigint,
               o_storm_id bigint, o_storm_started boolean, o_recent_opens integer,
               o_group_id bigint, o_source text, o_group_key text, o_status text, o_alertname text,
               o_severity text, o_labels jsonb, o_annotations jsonb, o_subject jsonb, o_channel text,
               o_route text, o_generation integer, o_anchor_ts text, o_thread_ts text,
               o_incident_id text, o_verdict jsonb, o_notifications integer, o_alerts_firing integer,
               o_first_seen timestamptz, o_last_seen timestamptz, o_fired_at timestamptz,
               o_resolved_at timestamptz, o_db_now timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    it      record;
    g       alert_groups%ROWTYPE;
    storm   bigint;
    kind    text;
    key     text;
    delay   double precision;
    queued  boolean := false;
    lock_key integer;
BEGIN
    FOR lock_key IN
        SELECT DISTINCT hashtext(e->>'channel') FROM jsonb_array_elements(items) e
        WHERE e->>'status' = 'firing' AND e->>'channel' IS NOT NULL AND e->>'anchor_ts' IS NULL
        ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(storm_lock_space, lock_key);
    END LOOP;

    FOR it IN
        SELECT (x.ord - 1)::integer AS i, x.e, payloads[x.ord] AS payload
        FROM jsonb_array_elements(items) WITH ORDINALITY AS x(e, ord)
        ORDER BY x.e->>'source', x.e->>'group_key', x.ord
    LOOP
        o_item := it.i;
        o_storm_started := false;
        o_recent_opens := NULL;
        IF it.e->>'event_id' IS NOT NULL THEN
            INSERT INTO slack_events (event_id, retry_num)
            VALUES (it.e->>'event_id', coalesce((it.e->>'retry_num')::integer, 0))
            ON CONFLICT (event_id) DO NOTHING;
            IF NOT FOUND THEN
                o_action := NULL; o_notification_id := NULL; o_job_id := NULL; o_storm_id := NULL;
                o_group_id := NULL;
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;

        INSERT INTO alert_groups AS a (source, group_key, status, alertname, severity, labels, annotations,
                                       subject, channel, route, anchor_ts, thread_ts, notifications,
                                       alerts_firing, resolved_at, last_action)
        VALUES (it.e->>'source', it.e->>'group_key', it.e->>'status', it.e->>'alertname', it.e->>'severity',
                it.e->'labels', it.e->'annotations', it.e->'subject', it.e->>'channel', it.e->>'route',
                it.e->>'anchor_ts', it.e->>'anchor_ts', 1, (it.e->>'firing')::integer,
                CASE WHEN it.e->>'status' = 'resolved' THEN now() END, 'open')
        ON CONFLICT (source, group_key) DO UPDATE SET
            generation = a.generation + CASE WHEN recon_alert_reopens(excluded.status, a.status, a.resolved_at, reopen_s)
                THEN 1 ELSE 0 END,
            anchor_ts = CASE WHEN recon_alert_reopens(excluded.status, a.status, a.resolved_at, reopen_s)
                THEN NULL ELSE a.anchor_ts END,
            thread_ts = CASE WHEN recon_alert_reopens(excluded.status, a.status, a.resolved_at, reopen_s)
                THEN NULL ELSE a.thread_ts END,
            incident_id = CASE WHEN recon_alert_reopens(excluded.status, a.status, a.resolved_at, reopen_s)
                THEN NULL ELSE a.incident_id END,
            storm_id = CASE WHEN recon_alert_reopens(excluded.status, a.status, a.resolved_at, reopen_s)
                THEN NULL ELSE a.storm_id END,
            verdict = CASE WHEN recon_alert_reopens(excluded.status, a.status, a.resolved_at, reopen_s)
                THEN NULL ELSE a.verdict END,
            fired_at = CASE WHEN a.status = 'resolved' AND excluded.status = 'firing' THEN now() ELSE a.fired_at END,
            resolved_at = CASE WHEN excluded.status = 'resolved' AND a.status = 'firing' THEN now()
                               WHEN excluded.status = 'firing' THEN NULL ELSE a.resolved_at END,
            last_action = CASE
                WHEN recon_alert_reopens(excluded.status, a.status, a.resolved_at, reopen_s) THEN 'open'
                WHEN excluded.status = 'firing' AND a.status = 'resolved' THEN 'refire'
                WHEN excluded.status = 'resolved' AND a.status = 'firing' THEN 'resolve'
                ELSE 'repeat' END,
            status = excluded.status, severity = excluded.severity, labels = excluded.labels,
            annotations = excluded.annotations, alerts_firing = excluded.alerts_firing,
            notifications = a.notifications + 1, last_seen = now()
        RETURNING a.* INTO g;

        storm := g.storm_id;
        IF g.last_action = 'open' AND it.e->>'channel' IS NOT NULL AND it.e->>'anchor_ts' IS NULL THEN
            -- the storm lock of the channel it was routed to is held (taken above)
            SELECT count(*)::integer INTO o_recent_opens FROM alert_groups
            WHERE channel = it.e->>'channel' AND fired_at > now() - make_interval(secs => storm_window_s)
              AND status = 'firing';
            IF o_recent_opens >= storm_threshold THEN
                SELECT s.storm_id INTO storm FROM alert_storms s
                WHERE s.channel = it.e->>'channel' AND s.last_joined > now() - make_interval(secs => storm_window_s)
                ORDER BY s.storm_id DESC LIMIT 1
                FOR UPDATE;
                IF storm IS NULL THEN
                    INSERT INTO alert_storms (channel) VALUES (it.e->>'channel') RETURNING alert_storms.storm_id INTO storm;
                    o_storm_started := true;
                END IF;
                UPDATE alert_storms SET last_joined = now() WHERE alert_storms.storm_id = storm;
                UPDATE alert_groups SET storm_id = storm WHERE group_id = g.group_id;
                g.storm_id := storm;
            END IF;
        END IF;

        IF storm IS NOT NULL AND (g.last_action = 'open' OR g.anchor_ts IS NULL) THEN
            -- a storm gathers for a moment, so that its groups are triaged in order of
            -- severity; until a member's first message is posted, what it receives is the
            -- storm job's to show too (the job queued or running for it takes it: usually
            -- nothing new is queued). This row's lock makes that safe: the storm job sets
            -- the anchor after this commits, then reads the group's unhandled notifications.
            kind := 'alert_storm'; key := 'alert_storm:' || storm; delay := storm_gather_s;
        ELSE
            kind := 'alert'; key := 'alert:' || g.group_id; delay := 0;
        END IF;

        INSERT INTO alert_notifications (group_id, generation, action, status, alerts, payload)
        VALUES (g.group_id, g.generation, g.last_action, it.e->>'status', (it.e->>'alerts')::integer,
                it.payload)
        RETURNING notification_id INTO o_notification_id;

        o_job_id := NULL;
        INSERT INTO jobs (kind, dedup_key, payload, max_attempts, run_after)
        VALUES (kind, key, jsonb_build_object('group_id', g.group_id, 'storm_id', storm), 10,
                now() + make_interval(secs => delay))
        ON CONFLICT (dedup_key) WHERE status IN ('queued', 'running') DO NOTHING
        RETURNING job_id INTO o_job_id;
        queued := queued OR o_job_id IS NOT NULL;

        o_action := g.last_action; o_storm_id := storm;
        o_group_id := g.group_id; o_source := g.source; o_group_key := g.group_key; o_status := g.status;
        o_alertname := g.alertname; o_severity := g.severity; o_labels := g.labels;
        o_annotations := g.annotations; o_subject := g.subject; o_channel := g.channel; o_route := g.route;
        o_generation := g.generation; o_anchor_ts := g.anchor_ts; o_thread_ts := g.thread_ts;
        o_incident_id := g.incident_id; o_verdict := g.verdict; o_notifications := g.notifications;
        o_alerts_firing := g.alerts_firing; o_first_seen := g.first_seen; o_last_seen := g.last_seen;
        o_fired_at := g.fired_at; o_resolved_at := g.resolved_at; o_db_now := now();
        RETURN NEXT;
    END LOOP;

    IF queued THEN
        PERFORM pg_notify(notify_channel, '');
    END IF;
END
$$;
