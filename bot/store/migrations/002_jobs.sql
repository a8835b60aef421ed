-- 002_jobs: durable jobs with leases, idempotent Slack posts, and Slack event dedup.
--
-- A job accepted is never lost: it is a row here until done. A worker claims it with a
-- lease (lease_owner, lease_until) and renews it while it runs; a job whose lease
-- expired (its process died) is claimed again by another worker. At most one job is
-- active per dedup_key, so a second /recon for a running subject finds the first.

CREATE TABLE jobs (
    job_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL,
    dedup_key    text NOT NULL,
    payload      jsonb NOT NULL DEFAULT '{}'::jsonb,
    status       text NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempts     integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 5,
    lease_owner  text,
    lease_until  timestamptz,
    run_after    timestamptz NOT NULL DEFAULT now(),
    last_error   text,
    result       jsonb,
    incident_id  text REFERENCES incidents ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE UNIQUE INDEX jobs_one_active_per_key ON jobs (dedup_key) WHERE status IN ('queued', 'running');
CREATE INDEX jobs_claimable ON jobs (run_after, job_id) WHERE status IN ('queued', 'running');

-- Every message the bot posted for a job, by a stable key ("parent", "step:logs", …).
-- A row in state 'posting' with no ts means a post may or may not have reached Slack
-- (the process died in between): the poster looks for the message's metadata in the
-- thread before posting again.
CREATE TABLE slack_posts (
    job_id     bigint NOT NULL REFERENCES jobs ON DELETE CASCADE,
    post_key   text NOT NULL,
    channel    text NOT NULL,
    thread_ts  text,
    ts         text,
    state      text NOT NULL DEFAULT 'posting' CHECK (state IN ('posting', 'posted')),
    created_at timestamptz NOT NULL DEFAULT now(),
    posted_at  timestamptz,
    PRIMARY KEY (job_id, post_key)
);

-- Slack's Events API delivers at least once (retries carry the same event_id): an
-- event is handled only by the request that inserted its id first.
CREATE TABLE slack_events (
    event_id    text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    retry_num   integer NOT NULL DEFAULT 0
);
CREATE INDEX slack_events_received_at ON slack_events (received_at);

ALTER TABLE diagnosis_runs ADD COLUMN job_id bigint REFERENCES jobs ON DELETE SET NULL;
