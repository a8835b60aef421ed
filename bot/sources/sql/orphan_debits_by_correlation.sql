-- Usage debits carrying one of the correlation ids $1, posted in [$2, $3) (the caller
-- widens the diagnosis window by a day on each side, as for ledger_by_correlation),
-- whose usage_record_id is null or names no usage row.
-- Index: ledger_entries (correlation_id); usage_records primary key.
select l.ledger_entry_id, l.org_id, l.project_id, l.usage_record_id, l.direction, l.kind,
       l.amount_minor, l.currency, l.reverses_entry_id, l.idempotency_key, l.correlation_id,
       l.description, l.posted_at
from billing.ledger_entries l
where l.correlation_id = any($1::text[])
  and l.posted_at >= $2
  and l.posted_at < $3
  and l.direction = 'debit'
  and l.kind = 'usage'
  and (l.usage_record_id is null
       or not exists (select 1 from billing.usage_records u
                      where u.usage_record_id = l.usage_record_id))
