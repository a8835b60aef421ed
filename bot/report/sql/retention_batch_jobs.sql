-- Jobs done or failed before $1, at most $2 of them, oldest first; the number deleted.
-- Queued and running jobs are never touched, nor a job of an incident that still needs
-- it (not closed, or with an active freeze or an open approval prompt). Their Slack
-- posts stay (job_id set null: posts have their own retention), and so do their runs.
WITH doomed AS (
    SELECT j.job_id FROM jobs j
    WHERE j.status IN ('done', 'failed') AND j.finished_at < $1
      AND NOT EXISTS (
          SELECT 1 FROM incidents i WHERE i.incident_id = j.incident_id
            AND (i.status <> 'closed'
                 OR EXISTS (SELECT 1 FROM freezes f WHERE f.incident_id = i.incident_id AND f.status = 'active')
                 OR EXISTS (SELECT 1 FROM approval_prompts p
                            WHERE p.incident_id = i.incident_id AND p.status = 'open')))
    ORDER BY j.finished_at LIMIT $2
    FOR UPDATE OF j SKIP LOCKED
), gone AS (
    DELETE FROM jobs WHERE job_id IN (SELECT job_id FROM doomed) RETURNING 1
)
SELECT count(*) FROM gone
