-- The rows of the incident's sealed correction batches, per batch in the order proposed.
SELECT r.batch_id, r.action, r.org_id, r.project_id, r.usage_record_id, r.reverses_entry_id, r.amount_minor,
       r.currency, r.correlation_id, r."check", r.reason
FROM correction_batch_rows r
JOIN correction_batches b USING (batch_id)
WHERE b.incident_id = $1
ORDER BY r.batch_id, r.position
