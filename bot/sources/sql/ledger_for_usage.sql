-- Every ledger entry naming one of the usage rows $1, plus every credit whose
-- reverses_entry_id names one of those entries (a reversal may carry no usage_record_id).
-- The reversals are looked for per (org_id, project_id) of the entries found, posted at
-- or after the earliest of them: a correction is appended in the same org and project as
-- the entry it corrects, never before it. One query form, two plans:
-- - the platform's schema has no index on reverses_entry_id (and the bot may not add
--   one): the planner walks the (org_id, project_id, posted_at) index from the earliest
--   entry on (every entry of the project since then: ~34k for a project of 100
--   instances over 7 days) and keeps the credits whose reverses_entry_id is one of the
--   entries found;
-- - with an index on reverses_entry_id (recommended to the platform's DBA: see
--   benchmarks/README.md), it probes that index with the entries found and checks the
--   project and posted_at on the few rows it returns.
-- Either way the answer is the same. No particular order. Columns in LedgerEntry field
-- order.
-- $2, $3, $4: the (org_id, project_id) pairs ($2[i], $3[i]) whose credits that reverse an
-- entry, posted at or after $4, the caller already has (the screening read them): for
-- those the walk stops at $4 (usually at once), and the reader adds the caller's credits
-- that reverse one of the entries found. Empty arrays and NULL: every walk is whole.
with direct as materialized (
    select l.ledger_entry_id, l.org_id, l.project_id, l.usage_record_id, l.direction, l.kind,
       l.amount_minor, l.currency, l.reverses_entry_id, l.idempotency_key, l.correlation_id,
       l.description, l.posted_at
    from billing.ledger_entries l
    where l.usage_record_id = any($1::text[])
),
scope as (
    select d.org_id, d.project_id, min(d.posted_at) as since,
           case when $4::timestamptz is not null
                     and (d.org_id, d.project_id) in (select * from unnest($2::text[], $3::text[]))
                then $4::timestamptz else 'infinity'::timestamptz end as until,
           array_agg(d.ledger_entry_id) as entry_ids
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
      and l.posted_at < s.until
      and l.direction = 'credit'
      and l.reverses_entry_id = any(s.entry_ids)
    offset 0  -- one index scan per (org, project), never a seq scan + hash join
) as c
  -- not already in direct (the reader forces custom plans: a hashed = any)
where c.usage_record_id is null or not c.usage_record_id = any($1::text[])
