-- Usage debits of the (org_id, project_id) pairs ($1[i], $2[i]) posted in [$3, $4)
-- whose usage_record_id is null or names no usage row.
-- $5: app instances whose rows these debits most likely name (the diagnosis's own).
-- Their rows from a day before the window on are read once, and the debits that name
-- one of them are set aside by one hash anti-join; only the rest (orphans, and debits of
-- other or older rows) are looked up one by one in the usage primary key. The answer
-- does not depend on $5 (empty: every debit is looked up); the work does: at tenant
-- scale 336k lookups were most of this query's time.
-- Indexes: ledger_entries (org_id, project_id, posted_at) and primary key;
-- usage_records (app_instance_id, period_start) and primary key.
with seen as (
    select u.usage_record_id
    from billing.usage_records u
    where u.app_instance_id = any($5::text[])
      and u.period_start >= $3::timestamptz - interval '1 day'
      and u.period_start < $4
    offset 0  -- read once and hashed, never probed per debit
),
candidates as materialized (
    select l.ledger_entry_id, l.usage_record_id
    from unnest($1::text[], $2::text[]) as p(org_id, project_id)
    join billing.ledger_entries l
      on l.org_id = p.org_id and l.project_id = p.project_id
    where l.posted_at >= $3
      and l.posted_at < $4
      and l.direction = 'debit'
      and l.kind = 'usage'
      and not exists (select 1 from seen s where s.usage_record_id = l.usage_record_id)
)
select l.ledger_entry_id, l.org_id, l.project_id, l.usage_record_id, l.direction, l.kind,
       l.amount_minor, l.currency, l.reverses_entry_id, l.idempotency_key, l.correlation_id,
       l.description, l.posted_at
from candidates c
join billing.ledger_entries l on l.ledger_entry_id = c.ledger_entry_id
where c.usage_record_id is null
   or not exists (select 1 from billing.usage_records u where u.usage_record_id = c.usage_record_id)
