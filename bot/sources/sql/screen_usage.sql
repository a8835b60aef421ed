-- The database's first pass over many instances' usage rows: of the rows of the app
-- instances $1 with period_start in [$2, $3) ($2: the window's start $4 floored to the
-- hour), only those that might break rule 1, 2, 3, 6 or 7 (platform.md). A SUPERSET of
-- what run_checks flags on these rows under those rules: a row left out is certain to
-- be correct; a few extra rows are harmless (the checks read their ledger in full).
-- Three kinds of answer rows, told by the first column (the reader maps each onto its
-- dataclass, columns in field order):
--   'usage':    a row worth a closer look (columns 2-21: UsageRecord);
--   'ledger':   an entry of the instances' (org_id, project_id) (columns 22-34:
--               LedgerEntry), either a credit that reverses an entry (reverses_entry_id
--               set) posted at or after $2: the screening reads them anyway (rule 6), and
--               the ledger of the suspect rows then need not read those projects again;
--               or a usage debit posted in [$4, $3) ($4: the window's start) whose
--               usage_record_id is NULL or names no usage row: what orphan_debits answers
--               for those projects. Their direction tells them apart;
--   'coverage': rule 4 per (app_instance_id, component) of a known component (columns
--               35-40: Coverage): how many rows, the first and the last period_start,
--               and the distinct period_starts sorted only when the rows are not one per
--               hour from the first to the last (as many rows as hours, every one on the
--               top of a UTC hour). As many rows as hours can still hide a missing hour
--               behind two rows of one hour: those rows are returned (rule 7), and the
--               caller asks usage_hours for their components (hidden_gaps).
--
-- Every rule here is per app instance (rule 7's groups too: check_duplicates groups one
-- instance's rows), so the reader may screen disjoint sets of instances in concurrent
-- queries: the union is this query's answer. The work is one pass over the rows, one
-- over the ledger entries that name them, and hash joins against small tables: at
-- tenant scale (336k rows) every per-row step costs, so nothing is joined on a wide key
-- (the rows meet their instance, component and price on (app_instance_id, component)).
--
-- A row is returned when
--   rules 1 to 3: its usage_source, anchors or control_plane_component are not its
--           instance's and component's (ic below), or the instance or the component is
--           unknown;
--   price: it cannot be priced exactly under its instance's attribution (no account,
--           no card, two equally ranked cards, a negative quantity), or its
--           resource_class is not its component's: rule 5 for a row that breaks none of
--           rules 1 to 3 is then the price of its component's key, so the cards are
--           ranked once per key and stretch of time (pr), not once per row;
--   rule 6: anything but exactly one usage debit or reversal credit names it (a row
--           whose debit was reversed and re-posted is returned: the checks count it), that
--           entry is not a usage debit, is not in the row's org and project, was posted before $2, is in
--           another currency than the account's, is not the rule 5 amount, or is
--           reversed. Reversals: the reversal credits that name one of the rows, and
--           those of the instances' (org_id, project_id) posted at or after $2: a
--           correction is appended in the same org and project as the entry it corrects,
--           never before it (ledger_for_usage reads them the same way), and a debit in
--           another project or posted before $2 is returned anyway;
--   rule 7: another row of its app instance shares its (component, period_start) or
--           its source_event_id (every member of such a group).
-- Rule 5: round_half_even(quantity * unit_price_micros * 10^exp / 10^6) in minor units.
-- With n = quantity * 10^6 * price * 10^exp (an integer: quantity has 6 decimals) and a
-- debit of a: a is that price when 2|n - a*10^12| < 10^12, or = 10^12 and a is even.
-- Numeric arithmetic on every row costs: a row of 3,600 seconds (a full hour, nearly
-- every row) is compared with its key's full-hour amount, rounded once in pr.
-- Indexes: usage_records (app_instance_id, period_start) and primary key;
-- ledger_entries (usage_record_id) and (org_id, project_id, posted_at).
with ic as materialized (
    select c.app_instance_id, c.component, c.control_plane, c.resource_class, i.org_id, i.project_id,
           i.operating_mode, i.control_plane_scope, i.runtime_backend, i.allocation_id,
           case when i.operating_mode = 'managed' or c.control_plane
                then 'app_runtime' else 'allocation' end as want_source,
           b.currency
    from billing.app_instance_components c
    join billing.app_instances i on i.app_instance_id = c.app_instance_id
    join billing.billing_accounts b on b.org_id = i.org_id
    where c.app_instance_id = any($1::text[])
),
keys as (
    select distinct ic.currency, ic.want_source, ic.control_plane, ic.control_plane_scope
    from ic
),
cand as (
    select k.currency as account_currency, k.want_source, k.control_plane, k.control_plane_scope as scope,
           r.resource_class, r.rate_card_id, r.unit_price_micros, r.currency,
           r.control_plane_scope is not null as scoped, r.effective_from, r.effective_to
    from keys k
    join billing.rate_cards r
      on upper(r.currency) = upper(k.currency)
     and r.usage_source = k.want_source
     and r.control_plane = k.control_plane
     and (r.control_plane_scope is null or r.control_plane_scope = k.control_plane_scope)
    where r.effective_from < $3 and (r.effective_to is null or r.effective_to > $2)
),
iv as (
    select b.account_currency, b.want_source, b.control_plane, b.scope, b.resource_class,
           b.t as t_from,
           coalesce(lead(b.t) over (partition by b.account_currency, b.want_source, b.control_plane,
                                                 b.scope, b.resource_class order by b.t), $3) as t_to
    from (
        select distinct x.account_currency, x.want_source, x.control_plane, x.scope, x.resource_class, v.t
        from cand x
        cross join lateral (values ($2::timestamptz), (x.effective_from), (x.effective_to)) as v(t)
        where v.t >= $2 and v.t < $3
    ) as b
),
best as (
    select iv.*, x.unit_price_micros, x.currency,
           row_number() over w as pos,
           count(*) over (partition by iv.account_currency, iv.want_source, iv.control_plane, iv.scope,
                          iv.resource_class, iv.t_from, x.scoped, x.effective_from) as ties
    from iv
    join cand x
      on x.account_currency = iv.account_currency and x.want_source = iv.want_source
     and x.control_plane = iv.control_plane and x.scope = iv.scope
     and x.resource_class = iv.resource_class
     and x.effective_from <= iv.t_from and (x.effective_to is null or iv.t_from < x.effective_to)
    window w as (partition by iv.account_currency, iv.want_source, iv.control_plane, iv.scope,
                              iv.resource_class, iv.t_from
                 order by x.scoped desc, x.effective_from desc, x.rate_card_id)
),
pr as materialized (
    select p.*,
           -- a full hour's amount (3,600 seconds: nearly every row), rounded half to even once
           -- here instead of per row (NULL when out of bigint's range: those rows take the
           -- numeric test)
           case when p.m between 0 and 1e27
                then (div(3600 * p.m, 1000000000000)
                      + case when mod(3600 * p.m, 1000000000000) * 2 > 1000000000000 then 1
                             when mod(3600 * p.m, 1000000000000) * 2 = 1000000000000
                             then mod(div(3600 * p.m, 1000000000000), 2)
                             else 0 end)::bigint end as hour_amount
    from (
    select ic.*, b.t_from, b.t_to,
           b.currency = ic.currency and b.ties = 1 as exact,
           b.unit_price_micros::numeric * 1000000
           * case when upper(ic.currency) in ('JPY', 'KRW', 'VND', 'CLP', 'ISK',
                                              'UGX', 'XAF', 'XOF', 'PYG') then 1
                  when upper(ic.currency) in ('BHD', 'KWD', 'JOD', 'OMR', 'TND',
                                              'IQD', 'LYD') then 1000
                  else 100 end as m
    from ic
    join best b
      on b.pos = 1 and b.account_currency = ic.currency and b.want_source = ic.want_source
     and b.control_plane = ic.control_plane and b.scope = ic.control_plane_scope
     and b.resource_class = ic.resource_class
    ) as p
),
ids as materialized (
    -- the rows' ids, sorted as the index is (byte order is the C.UTF-8 order of ASCII
    -- ids): the index scan's own sort of the array finds it sorted; any order is correct
    select array(
        select u.usage_record_id
        from billing.usage_records u
        where u.app_instance_id = any($1::text[])
          and u.period_start >= $2
          and u.period_start < $3
        order by u.usage_record_id collate "C") as a
),
deb as (
    -- per row, of the usage debits and reversal credits that name it: ok when there is
    -- exactly one, a usage debit posted at or after $2; and (when one) that entry's
    -- amount, currency, org and project. Read once, by r's hash join (not materialized:
    -- the walk asks ids, and the reversals come through f0)
    select l.usage_record_id,
           count(*) = 1 and bool_and(l.direction = 'debit' and l.kind = 'usage')
           and min(l.posted_at) >= $2 as ok,
           min(l.amount_minor) as amount, min(l.currency) as currency,
           min(l.org_id) as org_id, min(l.project_id) as project_id,
           array_agg(l.reverses_entry_id) filter (where l.reverses_entry_id is not null) as revs
    from billing.ledger_entries l
    where l.usage_record_id = any((select ids.a from ids)::text[])
      -- a refund or promo credit is a concession, not a mismatch; other kinds are no charge
      and (l.direction, l.kind) in (('debit', 'usage'), ('credit', 'reversal'))
    group by l.usage_record_id
),
walk as materialized (
    -- one index range per (org_id, project_id) of the instances, from $2 on: every credit
    -- that reverses an entry, and the orphan candidates: the usage debits posted in
    -- [$4, $3) that name no row screened here (ids, one hashed lookup per debit; keeping
    -- the project's every debit instead, to set them aside later, costs a tuplestore of
    -- them all); narrow (the few returned are read whole by primary key)
    select c.*
    from (select distinct ic.org_id, ic.project_id from ic) as s
    cross join lateral (
        select l.ledger_entry_id, l.usage_record_id, l.direction = 'credit' as credit,
               l.kind = 'reversal' as reversal, l.reverses_entry_id
        from billing.ledger_entries l
        where l.org_id = s.org_id
          and l.project_id = s.project_id
          and l.posted_at >= $2
          and ((l.direction = 'credit' and l.reverses_entry_id is not null)
               or (l.direction = 'debit' and l.kind = 'usage' and l.posted_at >= $4 and l.posted_at < $3
                   and not exists (select 1 from ids, unnest(ids.a) as i(id) where i.id = l.usage_record_id)))
        offset 0
    ) as c
),
orphans as (
    -- the candidates whose usage_record_id is NULL or names no usage row at all (debits of
    -- rows before $2, of other instances, or of none): looked up in the primary key
    select w.ledger_entry_id
    from walk w
    where not w.credit
      and (w.usage_record_id is null
           or not exists (select 1 from billing.usage_records u where u.usage_record_id = w.usage_record_id))
),
k as materialized (
    -- one pass, three groupings (g): 1: the source events of an instance shared by two
    -- rows; 2: the (component, period_start) of an instance shared by two rows (rule 7);
    -- 3: every (instance, component): its coverage (rule 4)
    select grouping(u.source_event_id, u.period_start) as g, u.app_instance_id, u.source_event_id,
           coalesce(u.component, '') as component, u.component is null as no_component, u.period_start,
           count(*)::int as n, min(u.period_start) as first_hour, max(u.period_start) as last_hour,
           -- date_bin: arithmetic on the timestamp, no time zone rules (date_trunc's cost)
           count(*) filter (where u.period_start
                                  <> date_bin('1 hour', u.period_start,
                                              timestamptz '2000-01-01 00:00+00')) as off_hour
    from billing.usage_records u
    where u.app_instance_id = any($1::text[])
      and u.period_start >= $2
      and u.period_start < $3
    group by grouping sets ((u.app_instance_id, u.source_event_id),
                            (u.app_instance_id, u.component, u.period_start),
                            (u.app_instance_id, u.component))
    having count(*) > 1 or grouping(u.source_event_id, u.period_start) = 3
),
r as (
    select u.usage_record_id,
           p.app_instance_id is null
           or u.org_id is distinct from p.org_id
           or u.project_id is distinct from p.project_id
           or u.operating_mode is distinct from p.operating_mode
           or u.control_plane_scope is distinct from p.control_plane_scope
           or u.runtime_backend is distinct from p.runtime_backend
           or u.usage_source <> p.want_source
           or (p.want_source = 'allocation' and u.allocation_id is distinct from p.allocation_id)
           or u.control_plane_component <> p.control_plane
           or u.resource_class <> p.resource_class
           or p.exact is not true
           or u.quantity < 0
           or d.ok is not true
           or d.org_id <> u.org_id
           or d.project_id <> u.project_id
           or d.currency is null
           or (d.currency <> p.currency and upper(d.currency) <> upper(p.currency)) as off,
           -- rule 5: a full hour debited its key's precomputed amount passes at once; only
           -- the other rows take the numeric test, n - a*10^12 compared with 10^12/2
           case when u.quantity = 3600 and d.amount = p.hour_amount then false
                else abs(u.quantity * p.m - d.amount::numeric * 1000000000000) * 2 > 1000000000000
                     or (abs(u.quantity * p.m - d.amount::numeric * 1000000000000) * 2 = 1000000000000
                         and d.amount % 2 <> 0) end as bad_price,
           d.revs
    from billing.usage_records u
    left join pr p
           on p.app_instance_id = u.app_instance_id and p.component = u.component
          and p.t_from <= u.period_start and u.period_start < p.t_to
    left join deb d on d.usage_record_id = u.usage_record_id
    where u.app_instance_id = any($1::text[])
      and u.period_start >= $2
      and u.period_start < $3
    offset 0
),
f0 as materialized (
    -- the rows flagged row by row; a row some reversal credit names is among them (it has
    -- not exactly one usage debit), and brings the entries those credits reverse
    select r.usage_record_id, r.revs
    from r
    where r.off or r.bad_price
),
reversed as (
    -- the entries reversed: by the credits that name a row, and by the projects' credits
    select unnest(f0.revs) as ledger_entry_id
    from f0
    where f0.revs is not null
    union
    select w.reverses_entry_id
    from walk w
    where w.credit and w.reversal
),
f as materialized (
    select f0.usage_record_id
    from f0
    union
    -- a row whose debit is reversed: the few reversed entries, looked up by primary key,
    -- name their rows (any row of these instances named by a reversed entry: a superset)
    select u.usage_record_id
    -- (the distinct subquery stays: without it the planner joins every row of these
    -- instances to the ledger instead of probing for the few reversed entries)
    from (select distinct v.ledger_entry_id from reversed v where v.ledger_entry_id is not null) as v
    join billing.ledger_entries l on l.ledger_entry_id = v.ledger_entry_id
    join billing.usage_records u on u.usage_record_id = l.usage_record_id
    where u.app_instance_id = any($1::text[])
      and u.period_start >= $2
      and u.period_start < $3
    union
    -- every member of a duplicate group (rule 7): the few groups' rows, by index (a probe
    -- of every row against k would cost a hash lookup per row)
    select u.usage_record_id
    from k
    join billing.usage_records u
      on u.app_instance_id = k.app_instance_id
     and u.period_start >= $2 and u.period_start < $3
     and ((k.g = 1 and u.source_event_id = k.source_event_id)
          or (k.g = 2 and u.period_start = k.period_start
              and coalesce(u.component, '') = k.component and (u.component is null) = k.no_component))
    where k.g in (1, 2)
)
select 'usage' as kind,
       u.usage_record_id, u.source_event_id, u.org_id, u.project_id, u.usage_source,
       u.allocation_id, u.app_instance_id, u.component, u.control_plane_component,
       u.operating_mode, u.control_plane_scope, u.runtime_backend, u.resource_class,
       u.quantity, u.unit, u.period_start, u.period_end, u.correlation_id, u.trace_id,
       u.recorded_at,
       -- the other kinds' columns, typed and named here (the first branch's rule)
       null::text as ledger_entry_id, null::text as org_id, null::text as project_id,
       null::text as usage_record_id, null::text as direction, null::text as kind,
       null::bigint as amount_minor, null::text as currency, null::text as reverses_entry_id,
       null::text as idempotency_key, null::text as correlation_id, null::text as description,
       null::timestamptz as posted_at,
       null::text as app_instance_id, null::text as component, null::int as rows,
       null::timestamptz as first_hour, null::timestamptz as last_hour, null::timestamptz[] as hours
from f join billing.usage_records u on u.usage_record_id = f.usage_record_id
union all
select 'ledger',
       null, null, null, null, null, null, null, null, null, null, null, null, null, null,
       null, null, null, null, null, null,
       l.ledger_entry_id, l.org_id, l.project_id, l.usage_record_id, l.direction, l.kind,
       l.amount_minor, l.currency, l.reverses_entry_id, l.idempotency_key, l.correlation_id,
       l.description, l.posted_at,
       null, null, null, null, null, null
from (select w.ledger_entry_id from walk w where w.credit
      union all
      select o.ledger_entry_id from orphans o) as e
join billing.ledger_entries l on l.ledger_entry_id = e.ledger_entry_id
union all
select 'coverage',
       null, null, null, null, null, null, null, null, null, null, null, null, null, null,
       null, null, null, null, null, null,
       null, null, null, null, null, null, null, null, null, null, null, null, null,
       k.app_instance_id, k.component, k.n, k.first_hour, k.last_hour,
       case when k.off_hour = 0
                 and k.n = extract(epoch from k.last_hour - k.first_hour) / 3600 + 1
            then null
            else array(select distinct h.period_start
                       from billing.usage_records h
                       where h.app_instance_id = k.app_instance_id
                         and h.component = k.component
                         and h.period_start >= $2
                         and h.period_start < $3
                       order by h.period_start) end
from k
where k.g = 3 and not k.no_component
