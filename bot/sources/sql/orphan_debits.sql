-- Usage debits of the (org_id, project_id) pairs ($1[i], $2[i]) posted in [$3, $4)
-- whose usage_record_id is null or names no usage row.
-- Index: ledger_entries (org_id, project_id, posted_at); usage_records primary key.
select l.ledger_entry_id, l.org_id, l.project_id, l.usage_record_id, l.direction, l.kind,
       l.amount_minor, l.currency, l.reverses_entry_id, l.idempotency_key, l.correlation_id,
       l.description, l.posted_at
from unnest($1::text[], $2::text[]) as p(org_id, project_id)
join billing.ledger_entries l
  on l.org_id = p.org_id and l.project_id = p.project_id
where l.posted_at >= $3
  and l.posted_at < $4
  and l.direction = 'debit'
  and l.kind = 'usage'
  and (l.usage_record_id is null
       or not exists (select 1 from billing.usage_records u
                      where u.usage_record_id = l.usage_record_id))
