SELECT action, org_id, project_id, usage_record_id, reverses_entry_id, amount_minor, currency, correlation_id,
       "check", reason
FROM correction_batch_rows WHERE batch_id = $1 ORDER BY position
