-- Rule 4's coverage, computed in the database: per (app_instance_id, component) of the
-- instances $1, over the rows with period_start in [$2, $3) ($2: the window's start
-- floored to the hour): how many rows, and the distinct period_starts, sorted. Rows
-- without a component are left out (no instance has a NULL component). Columns in
-- Coverage field order. Index: usage_records (app_instance_id, period_start).
select u.app_instance_id, u.component, count(*)::int as rows,
       array_agg(distinct u.period_start order by u.period_start) as hours
from billing.usage_records u
where u.app_instance_id = any($1::text[])
  and u.period_start >= $2
  and u.period_start < $3
  and u.component is not null
group by u.app_instance_id, u.component
order by u.app_instance_id, u.component
