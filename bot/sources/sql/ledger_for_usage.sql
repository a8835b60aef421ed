-- Every ledger entry naming one of the usage rows $1, plus every credit whose
-- reverses_entry_id names one of those entries (a reversal may carry no usage_record_id).
-- ledger_entries has no index on reverses_entry_id (and the bot may not add one), so the
-- reversals are looked up per (org_id, project_id) through the (org_id, project_id,
-- posted_at) index, from the earliest entry found on: a correction is appended in the
-- same org and project as the entry it corrects, never before it. No particular order.
-- Columns in LedgerEntry field order.
with direct as materialized (
    select l.ledger_entry_id, l.org_id, l.project_id, l.usage_record_id, l.direction, l.kind,
       l.amount_minor, l.currency, l.reverses_entry_id, l.idempotency_key, l.correlation_id,
       l.description, l.posted_at
    from billing.ledger_entries l
    where l.usage_record_id = any($1::text[])
),
scope as (
    select d.org_id, d.project_id, min(d.posted_at) as since
    from direct d
    group by d.org_id, d.project_id
)
select * from direct
union all
select c.*
from scope s
cross join lateral (
    select l.ledger_entry_id, l.org_id, l.project_id, l.usage_record_id, l.direction, l.kind,
       l.amount_minor, l.currency, l.reverses_entry_id, l.idempotency_key, l.correlation_id,
       l.description, l.posted_at
    from billing.ledger_entries l
    where l.org_id = s.org_id
      and l.project_id = s.project_id
      and l.posted_at >= s.since
      and l.direction = 'credit'
      and l.reverses_entry_id is not null
    offset 0  -- keep it a per-(org, project) index scan, not a seq scan + hash join
) as c
where c.reverses_entry_id in (select d.ledger_entry_id from direct d)
  -- not already in direct (the reader forces custom plans: a hashed = any)
  and (c.usage_record_id is null or not c.usage_record_id = any($1::text[]))
