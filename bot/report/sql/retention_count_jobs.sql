-- What retention_batch_jobs would delete, all batches together (the same rule).
SELECT count(*) FROM jobs j
WHERE j.status IN ('done', 'failed') AND j.finished_at < $1
  AND NOT EXISTS (
      SELECT 1 FROM incidents i WHERE i.incident_id = j.incident_id
        AND (i.status <> 'closed'
             OR EXISTS (SELECT 1 FROM freezes f WHERE f.incident_id = i.incident_id AND f.status = 'active')
             OR EXISTS (SELECT 1 FROM approval_prompts p
                        WHERE p.incident_id = i.incident_id AND p.status = 'open')))
