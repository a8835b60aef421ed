-- Rule 4's coverage, computed in the database: per (app_instance_id, component) of the
-- instances $1, over the rows with period_start in [$2, $3) ($2: the window's start
-- floored to the hour): how many rows, the first and the last period_start, and the
-- distinct period_starts sorted only when the rows are not one per hour from the first
-- to the last (as many rows as hours, every period_start on the top of a UTC hour): a
-- week of a thousand instances is 2,000 short rows, not 336,000 timestamps. One hash
-- aggregate, no sort of the rows (the reader turns sorts off for it). As many rows as
-- hours can still hide a missing hour behind two rows of one hour: the screening
-- returns such rows (rule 7), and the caller asks usage_hours for those components.
-- Rows without a component are left out (no instance has a NULL component). Columns in
-- Coverage field order. Index: usage_records (app_instance_id, period_start).
with g as (
    select u.app_instance_id, u.component, count(*)::int as rows,
           min(u.period_start) as first_hour, max(u.period_start) as last_hour,
           -- date_bin: arithmetic on the timestamp, no time zone rules (date_trunc's cost)
           count(*) filter (where u.period_start
                                  <> date_bin('1 hour', u.period_start,
                                              timestamptz '2000-01-01 00:00+00')) as off_hour
    from billing.usage_records u
    where u.app_instance_id = any($1::text[])
      and u.period_start >= $2
      and u.period_start < $3
      and u.component is not null
    group by u.app_instance_id, u.component
)
select g.app_instance_id, g.component, g.rows, g.first_hour, g.last_hour,
       case when g.off_hour = 0
                 and g.rows = extract(epoch from g.last_hour - g.first_hour) / 3600 + 1
            then null
            else array(select distinct h.period_start
                       from billing.usage_records h
                       where h.app_instance_id = g.app_instance_id
                         and h.component = g.component
                         and h.period_start >= $2
                         and h.period_start < $3
                       order by h.period_start) end as hours
from g
order by g.app_instance_id, g.component
