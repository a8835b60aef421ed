-- App instances by id. Columns in AppInstance field order. Index: primary key.
select a.app_instance_id, a.org_id, a.project_id, a.app_kind, a.operating_mode,
       a.control_plane_scope, a.runtime_backend, a.allocation_id, a.status, a.started_at,
       a.stopped_at
from billing.app_instances a
where a.app_instance_id = any($1::text[])
order by a.app_instance_id
