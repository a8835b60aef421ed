-- Usage rows by id. Columns in UsageRecord field order. Index: primary key.
select u.usage_record_id, u.source_event_id, u.org_id, u.project_id, u.usage_source, u.allocation_id,
       u.app_instance_id, u.component, u.control_plane_component, u.operating_mode,
       u.control_plane_scope, u.runtime_backend, u.resource_class, u.quantity, u.unit,
       u.period_start, u.period_end, u.correlation_id, u.trace_id, u.recorded_at
from billing.usage_records u
where u.usage_record_id = any($1::text[])
