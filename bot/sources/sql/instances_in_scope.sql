-- App instances of an org (and project, when $2 is not null) whose run
-- [started_at, coalesce(stopped_at, now())] overlaps the window [$3, $4).
-- now() is the transaction's start. Instances that never started are left out.
-- app_instances has no index on org_id: it is one row per instance, a small table.
select a.app_instance_id, a.org_id, a.project_id, a.app_kind, a.operating_mode,
       a.control_plane_scope, a.runtime_backend, a.allocation_id, a.status, a.started_at,
       a.stopped_at
from billing.app_instances a
where a.org_id = $1
  and ($2::text is null or a.project_id = $2::text)
  and a.started_at is not null
  and a.started_at < $4
  and coalesce(a.stopped_at, now()) >= $3
order by a.app_instance_id
