-- The exact coverage of the (app_instance_id, component) pairs ($1[i], $2[i]) over the
-- rows with period_start in [$3, $4): how many rows, the first and the last
-- period_start, and every distinct period_start, sorted. Asked for the few components
-- whose screened coverage (screen_usage) could hide a missing hour (two rows of one hour).
-- Columns in Coverage field order. Index: usage_records (app_instance_id, period_start).
select u.app_instance_id, u.component, count(*)::int as rows,
       min(u.period_start) as first_hour, max(u.period_start) as last_hour,
       array_agg(distinct u.period_start order by u.period_start) as hours
from unnest($1::text[], $2::text[]) as p(app_instance_id, component)
join billing.usage_records u
  on u.app_instance_id = p.app_instance_id and u.component = p.component
where u.period_start >= $3
  and u.period_start < $4
group by u.app_instance_id, u.component
order by u.app_instance_id, u.component
