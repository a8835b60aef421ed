-- The database's first pass over many instances' usage rows: of the rows of the app
-- instances $1 with period_start in [$2, $3) ($2: the window's start floored to the
-- hour), only those that might break rule 1, 2, 3, 6 or 7 (platform.md). A SUPERSET of
-- what run_checks flags on these rows under those rules: a row left out is certain to
-- be correct; a few extra rows are harmless. Columns in UsageRecord field order.
--
-- A row is returned when
--   rule 1: its usage_source is not the one expected ('app_runtime' when the instance
--           is managed or the component is control plane, else 'allocation' with the
--           instance's allocation_id);
--   rule 2: an anchor differs from the instance's (IS DISTINCT FROM: NULL-safe), the
--           instance is unknown, or the component is not one of the instance's;
--   rule 3: control_plane_component differs from the component's control_plane;
--   rule 7: another row of its app instance shares its (component, period_start) or
--           its source_event_id (every member of such a group). Per instance, as the
--           checks group duplicates (check_duplicates runs over one instance's rows; a
--           row whose app_instance_id is one of $1 belongs to that instance): rows of
--           two instances sharing an event are never one group there. So every rule
--           here is per instance, and the reader may screen disjoint sets of
--           instances in concurrent queries: the union is this query's answer.
--   rule 6: the number of its 'usage' debits not cancelled by a 'reversal' credit is
--           not 1, or that debit's currency is not the org's billing currency, or its
--           amount is not the rule 5 price of the row as recorded, or the row cannot be
--           priced exactly (no account, no card, or two equally ranked cards).
-- Rule 5 price: the one card in the org's currency matching resource_class,
-- usage_source, control_plane = control_plane_component, scope null or equal to the
-- row's control_plane_scope, effective_from <= period_start < effective_to; a scoped
-- card beats an unscoped one, then the latest effective_from. Minor units =
-- round_half_even(quantity * unit_price_micros * 10^exp / 10^6), in exact numeric:
-- n = quantity * 10^6 * price * 10^exp is an integer (quantity has 6 decimals), and
-- the charge is n / 10^12 rounded half to even: q = n div 10^12, r = n mod 10^12;
-- 2r > 10^12: q + 1; 2r = 10^12: q + (q mod 2); else q.
-- Reversals: ledger_entries has no index on reverses_entry_id, so (as ledger_for_usage)
-- they are the reversal credits naming one of the rows, plus those of each (org_id,
-- project_id) of the rows' entries posted at or after the earliest of them (index
-- (org_id, project_id, posted_at)): a correction is appended in the same org and
-- project as the entry it corrects, never before it.
-- Indexes: usage_records (app_instance_id, period_start); ledger_entries
-- (usage_record_id) and (org_id, project_id, posted_at); primary keys.
with k as materialized (
    -- one pass over the rows: rule 7's shared events and slots, and the pricing keys
    select grouping(u.source_event_id, u.app_instance_id, u.org_id) as g,
           u.source_event_id, u.app_instance_id, coalesce(u.component, '') as component,
           u.component is null as no_component, u.period_start, u.org_id,
           u.resource_class, u.usage_source, u.control_plane_component,
           coalesce(u.control_plane_scope, '') as scope,
           u.control_plane_scope is null as no_scope, u.control_plane_scope, u.quantity
    from billing.usage_records u
    where u.app_instance_id = any($1::text[])
      and u.period_start >= $2
      and u.period_start < $3
    group by grouping sets (
        (u.app_instance_id, u.source_event_id),
        (u.app_instance_id, u.component, u.period_start),
        (u.org_id, u.resource_class, u.usage_source, u.control_plane_component,
         u.control_plane_scope, u.period_start, u.quantity))
    having count(*) > 1 or grouping(u.org_id) = 0
),
-- every entry naming one of the rows (debits, credits)
e as materialized (
    select l.ledger_entry_id, l.org_id, l.project_id, l.usage_record_id, l.direction,
           l.kind, l.amount_minor, l.currency, l.reverses_entry_id, l.posted_at
    from billing.ledger_entries l
    where l.usage_record_id = any(array(
        select u.usage_record_id
        from billing.usage_records u
        where u.app_instance_id = any($1::text[])
          and u.period_start >= $2
          and u.period_start < $3))
),
scope as (
    select e.org_id, e.project_id, min(e.posted_at) as since
    from e
    group by e.org_id, e.project_id
),
reversed as (
    select e.reverses_entry_id as ledger_entry_id
    from e
    where e.direction = 'credit' and e.kind = 'reversal' and e.reverses_entry_id is not null
    union
    select c.reverses_entry_id
    from scope s
    cross join lateral (
        select l.reverses_entry_id
        from billing.ledger_entries l
        where l.org_id = s.org_id
          and l.project_id = s.project_id
          and l.posted_at >= s.since
          and l.direction = 'credit'
          and l.kind = 'reversal'
          and l.reverses_entry_id is not null
        offset 0  -- a per-(org, project) index scan
    ) as c
),
-- per row: its usage debits not reversed (how many; the amount and currency of one)
deb as (
    select e.usage_record_id, count(*) as n, min(e.amount_minor) as amount,
           min(e.currency) as currency
    from e
    where e.direction = 'debit' and e.kind = 'usage'
      and e.ledger_entry_id not in (select r.ledger_entry_id from reversed r
                                    where r.ledger_entry_id is not null)
    group by e.usage_record_id
),
-- rule 5 once per distinct (pricing key, quantity): a handful of cards per key
pk as materialized (
    select q.org_id, q.resource_class, q.usage_source, q.control_plane_component, q.scope,
           q.no_scope, q.period_start, q.quantity, q.currency, q.exact,
           div(q.n, 1000000000000)
           + case when mod(q.n, 1000000000000) * 2 > 1000000000000 then 1
                  when mod(q.n, 1000000000000) * 2 = 1000000000000
                       then mod(div(q.n, 1000000000000), 2)
                  else 0 end as expected
    from (
        select k.org_id, k.resource_class, k.usage_source, k.control_plane_component, k.scope,
               k.no_scope, k.period_start, k.quantity, b.currency,
               coalesce(c.exact and k.quantity >= 0, false) as exact,
               k.quantity * 1000000 * c.unit_price_micros
               * 10::numeric ^ (case when upper(b.currency) in ('JPY', 'KRW', 'VND', 'CLP', 'ISK',
                                                                'UGX', 'XAF', 'XOF', 'PYG') then 0
                                     when upper(b.currency) in ('BHD', 'KWD', 'JOD', 'OMR', 'TND',
                                                                'IQD', 'LYD') then 3
                                     else 2 end) as n
        from k
        left join billing.billing_accounts b on b.org_id = k.org_id
        left join lateral (
            select top.unit_price_micros,
                   -- exact: one best card, in the account's currency spelled as it is
                   top.currency = b.currency and top.rank_tie = 1 as exact
            from (
                select r.unit_price_micros, r.currency,
                       count(*) over (partition by r.control_plane_scope is not null,
                                                   r.effective_from) as rank_tie,
                       r.control_plane_scope is not null as scoped, r.effective_from,
                       r.rate_card_id
                from billing.rate_cards r
                where upper(r.currency) = upper(b.currency)
                  and r.resource_class = k.resource_class
                  and r.usage_source = k.usage_source
                  and r.control_plane = k.control_plane_component
                  and (r.control_plane_scope is null
                       or r.control_plane_scope = k.control_plane_scope)
                  and r.effective_from <= k.period_start
                  and (r.effective_to is null or k.period_start < r.effective_to)
            ) as top
            order by top.scoped desc, top.effective_from desc, top.rate_card_id
            limit 1
        ) as c on true
        where k.g = 6  -- grouping bits (source_event_id, app_instance_id, org_id): 6 pricing,
                       -- 1 shared events, 5 shared slots
    ) as q
),
dup_event as materialized (
    select k.app_instance_id, k.source_event_id from k where k.g = 1
),
dup_slot as materialized (
    select k.app_instance_id, k.component, k.no_component, k.period_start from k where k.g = 5
)
select u.usage_record_id, u.source_event_id, u.org_id, u.project_id, u.usage_source,
       u.allocation_id, u.app_instance_id, u.component, u.control_plane_component,
       u.operating_mode, u.control_plane_scope, u.runtime_backend, u.resource_class,
       u.quantity, u.unit, u.period_start, u.period_end, u.correlation_id, u.trace_id,
       u.recorded_at
from billing.usage_records u
left join billing.app_instances i on i.app_instance_id = u.app_instance_id
left join billing.app_instance_components c
       on c.app_instance_id = u.app_instance_id and c.component = u.component
left join deb d on d.usage_record_id = u.usage_record_id
left join pk p
       on p.org_id = u.org_id and p.resource_class = u.resource_class
      and p.usage_source = u.usage_source
      and p.control_plane_component = u.control_plane_component
      and p.scope = coalesce(u.control_plane_scope, '')
      and p.no_scope = (u.control_plane_scope is null)
      and p.period_start = u.period_start
      and p.quantity = u.quantity
cross join lateral (
    select case when i.operating_mode = 'managed'
                     or coalesce(c.control_plane, u.control_plane_component)
                then 'app_runtime' else 'allocation' end as want_source
) as w
where u.app_instance_id = any($1::text[])
  and u.period_start >= $2
  and u.period_start < $3
  and (
    -- rule 2 (and an unknown instance or component)
    i.app_instance_id is null
    or c.component is null
    or u.org_id is distinct from i.org_id
    or u.project_id is distinct from i.project_id
    or u.operating_mode is distinct from i.operating_mode
    or u.control_plane_scope is distinct from i.control_plane_scope
    or u.runtime_backend is distinct from i.runtime_backend
    -- rule 1
    or u.usage_source <> w.want_source
    or (w.want_source = 'allocation' and u.allocation_id is distinct from i.allocation_id)
    -- rule 3
    or u.control_plane_component <> c.control_plane
    -- rule 6 (and a row that cannot be priced exactly: no account, no card, a tie)
    or d.n is distinct from 1
    or upper(d.currency) is distinct from upper(p.currency)
    or p.exact is not true
    or d.amount is distinct from p.expected
    -- rule 7
    or exists (select 1 from dup_event x
               where x.app_instance_id = u.app_instance_id
                 and x.source_event_id = u.source_event_id)
    or exists (select 1 from dup_slot x
               where x.app_instance_id = u.app_instance_id
                 and x.component = coalesce(u.component, '')
                 and x.no_component = (u.component is null)
                 and x.period_start = u.period_start))
