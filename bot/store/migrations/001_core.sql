-- 001_core: incidents, diagnosis runs, the timeline and the evidence record.
--
-- Applied by bot.store.db.migrate inside one transaction; never edit it once released
-- (its checksum is recorded): add 002_… instead. Later migrations add jobs, Slack posts,
-- approvals and freezes.
--
-- Append-only tables: timeline_events and evidence refuse UPDATE always, and DELETE /
-- TRUNCATE unless the session has set the custom setting recon.allow_purge to 'on'
-- (the retention command does `SET LOCAL recon.allow_purge = 'on'` in its transaction).

CREATE TABLE incidents (
    incident_id     text PRIMARY KEY CHECK (incident_id ~ '^INC-[0-9]{8}-[a-z0-9]{6}$'),
    subject_kind    text NOT NULL CHECK (subject_kind IN ('correlation_id', 'app_instance_id')),
    correlation_id  text,
    app_instance_id text,
    org_id          text,
    project_id      text,
    title           text NOT NULL,
    status          text NOT NULL DEFAULT 'open'
                    CHECK (status IN ('open', 'recovered', 'closed')),
    origin          text NOT NULL CHECK (origin IN ('cli', 'slack', 'alert', 'demo')),
    slack_channel   text,
    slack_thread_ts text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (subject_kind <> 'correlation_id' OR correlation_id IS NOT NULL),
    CHECK (subject_kind <> 'app_instance_id' OR app_instance_id IS NOT NULL),
    CHECK ((slack_channel IS NULL) = (slack_thread_ts IS NULL))
);

-- At most one open incident per subject: create_incident reuses it (ON CONFLICT).
CREATE UNIQUE INDEX incidents_one_open_per_subject
    ON incidents (subject_kind, (coalesce(correlation_id, app_instance_id)))
    WHERE status = 'open';
CREATE INDEX incidents_correlation_id ON incidents (correlation_id)
    WHERE correlation_id IS NOT NULL;
CREATE INDEX incidents_app_instance_id ON incidents (app_instance_id)
    WHERE app_instance_id IS NOT NULL;
CREATE INDEX incidents_created_at ON incidents (created_at DESC);
-- A Slack thread belongs to one incident (resolving an incident from a thread).
CREATE UNIQUE INDEX incidents_slack_thread ON incidents (slack_channel, slack_thread_ts)
    WHERE slack_channel IS NOT NULL;

CREATE TABLE diagnosis_runs (
    run_id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id        text NOT NULL REFERENCES incidents (incident_id) ON DELETE CASCADE,
    subject            jsonb NOT NULL,
    window_start       timestamptz NOT NULL,
    window_end         timestamptz NOT NULL,
    status             text NOT NULL DEFAULT 'running'
                       CHECK (status IN ('running', 'done', 'failed')),
    complete           boolean,
    scope              text CHECK (scope IN ('none', 'app_instance', 'project', 'tenant', 'broad')),
    freeze_recommended boolean,
    result             jsonb,
    error              text,
    started_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at        timestamptz,
    duration_ms        double precision,
    CHECK (window_end >= window_start),
    CHECK ((status = 'running') = (finished_at IS NULL))
);
CREATE INDEX diagnosis_runs_incident ON diagnosis_runs (incident_id, run_id);
CREATE INDEX diagnosis_runs_running ON diagnosis_runs (started_at) WHERE status = 'running';

CREATE TABLE timeline_events (
    event_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id    text NOT NULL REFERENCES incidents (incident_id) ON DELETE CASCADE,
    run_id         bigint REFERENCES diagnosis_runs (run_id) ON DELETE CASCADE,
    started_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    recorded_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    source         text NOT NULL,
    type           text NOT NULL,
    description    text NOT NULL,
    details        jsonb NOT NULL DEFAULT '{}'::jsonb,
    actor          text NOT NULL,
    correlation_id text,
    trace_id       text
);
CREATE INDEX timeline_events_incident ON timeline_events (incident_id, started_at, event_id);
CREATE INDEX timeline_events_run ON timeline_events (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX timeline_events_correlation_id ON timeline_events (correlation_id)
    WHERE correlation_id IS NOT NULL;

CREATE TABLE evidence (
    evidence_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id  text NOT NULL REFERENCES incidents (incident_id) ON DELETE CASCADE,
    run_id       bigint REFERENCES diagnosis_runs (run_id) ON DELETE CASCADE,
    step         text NOT NULL,
    phase        text NOT NULL DEFAULT 'before' CHECK (phase IN ('before', 'after')),
    source       text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('logql', 'trace', 'sql')),
    via          text NOT NULL DEFAULT '',
    request      text NOT NULL,
    params       jsonb NOT NULL DEFAULT '{}'::jsonb,
    window_start timestamptz,
    window_end   timestamptz,
    asked_at     timestamptz NOT NULL,
    duration_ms  double precision NOT NULL DEFAULT 0,
    row_count    integer NOT NULL CHECK (row_count >= 0),
    rows         jsonb NOT NULL DEFAULT '[]'::jsonb,   -- at most the row cap
    rows_digest  text NOT NULL CHECK (rows_digest ~ '^[0-9a-f]{64}$'),  -- over ALL rows
    truncated    boolean NOT NULL DEFAULT false,
    error        text,
    recorded_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX evidence_incident ON evidence (incident_id, run_id, evidence_id);
CREATE INDEX evidence_run ON evidence (run_id) WHERE run_id IS NOT NULL;

-- Append-only guard. UPDATE: always refused. DELETE / TRUNCATE: refused unless
-- recon.allow_purge = 'on' in this session or transaction (the retention command).
CREATE FUNCTION recon_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE')
       AND coalesce(current_setting('recon.allow_purge', true), '') = 'on' THEN
        IF TG_LEVEL = 'ROW' THEN
            RETURN OLD;
        END IF;
        RETURN NULL;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = 'only the retention command may delete, with recon.allow_purge = on';
END;
$$;

CREATE TRIGGER timeline_events_append_only
    BEFORE UPDATE OR DELETE ON timeline_events
    FOR EACH ROW EXECUTE FUNCTION recon_append_only();
CREATE TRIGGER timeline_events_no_truncate
    BEFORE TRUNCATE ON timeline_events
    FOR EACH STATEMENT EXECUTE FUNCTION recon_append_only();
CREATE TRIGGER evidence_append_only
    BEFORE UPDATE OR DELETE ON evidence
    FOR EACH ROW EXECUTE FUNCTION recon_append_only();
CREATE TRIGGER evidence_no_truncate
    BEFORE TRUNCATE ON evidence
    FOR EACH STATEMENT EXECUTE FUNCTION recon_append_only();
