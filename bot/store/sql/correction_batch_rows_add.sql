-- The sealed batch's proposals, in order (one array per column).
INSERT INTO correction_batch_rows (batch_id, position, action, org_id, project_id, usage_record_id,
                                   reverses_entry_id, amount_minor, currency, correlation_id, "check", reason)
SELECT $1, r.position, r.action, r.org_id, r.project_id, r.usage_record_id, r.reverses_entry_id, r.amount_minor,
       r.currency, r.correlation_id, r."check", r.reason
FROM unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::text[],
            $10::text[], $11::text[], $12::text[])
     AS r(position, action, org_id, project_id, usage_record_id, reverses_entry_id, amount_minor, currency,
          correlation_id, "check", reason)
