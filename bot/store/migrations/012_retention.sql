-- 012_retention: what the retention of jobs, Slack bookkeeping and alerts needs, and
-- job counts that /metrics can read without counting the jobs table.
--
-- Job counts. /metrics (unauthenticated) showed jobs by status with a count(*) over
-- jobs on every scrape. Now every change of a job's status appends a delta to
-- job_counts (a row inserted: +1 for its status; a status changed: -1 old, +1 new; rows
-- deleted: -n per status, once per statement), in the transaction that makes the change,
-- so the counts are exact and commit or roll back with it. Deltas are only ever
-- inserted: no row is a hot spot that the intake, the workers and the retention would
-- queue on. A scrape sums the few deltas; the reader folds them into one row per status
-- now and then (job_counts_compact.sql: a DELETE … RETURNING whose sums are inserted
-- again, safe to run concurrently).
CREATE TABLE job_counts (
    status text NOT NULL,
    n      bigint NOT NULL
);

LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE;  -- no job changes between the seed and the triggers
INSERT INTO job_counts (status, n) SELECT status, count(*) FROM jobs GROUP BY status;

CREATE FUNCTION recon_job_counts_row() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO job_counts (status, n) VALUES (NEW.status, 1);
    ELSE
        INSERT INTO job_counts (status, n) VALUES (OLD.status, -1), (NEW.status, 1);
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION recon_job_counts_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_counts (status, n) SELECT status, -count(*) FROM gone GROUP BY status;
    RETURN NULL;
END;
$$;

CREATE FUNCTION recon_job_counts_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_counts;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs
    FOR EACH ROW EXECUTE FUNCTION recon_job_counts_row();
CREATE TRIGGER jobs_count_update AFTER UPDATE OF status ON jobs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION recon_job_counts_row();
CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION recon_job_counts_deleted();
CREATE TRIGGER jobs_count_truncate AFTER TRUNCATE ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION recon_job_counts_truncated();

-- A Slack post outlives the job that made it: posts have a retention of their own (as
-- long as their incident's thread, or their alert group's generation), and the next job
-- posting in the same namespace needs them to post once. Deleting a finished job used to
-- take its posts with it.
ALTER TABLE slack_posts DROP CONSTRAINT slack_posts_job_id_fkey;
ALTER TABLE slack_posts ADD CONSTRAINT slack_posts_job_id_fkey
    FOREIGN KEY (job_id) REFERENCES jobs ON DELETE SET NULL;

-- The retention's batches walk these, oldest first, and stop at the cutoff.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE status IN ('done', 'failed');
CREATE INDEX slack_posts_created_at ON slack_posts (created_at);
CREATE INDEX alert_notifications_received_at ON alert_notifications (received_at);
CREATE INDEX alert_groups_resolved ON alert_groups (resolved_at) WHERE status = 'resolved';
CREATE INDEX alert_groups_storm ON alert_groups (storm_id) WHERE storm_id IS NOT NULL;
CREATE INDEX alert_storms_last_joined ON alert_storms (last_joined);
CREATE INDEX slack_posts_job ON slack_posts (job_id) WHERE job_id IS NOT NULL;
-- Deleting a job sets these to null, deleting an alert group takes its notifications:
-- without an index each deleted row would scan the referencing table.
CREATE INDEX diagnosis_runs_job ON diagnosis_runs (job_id) WHERE job_id IS NOT NULL;
CREATE INDEX alert_notifications_group ON alert_notifications (group_id);
