-- export_entries: the ledger entries of an org (and project, when $2 is not null) posted
-- in the given UTC months, each as the usage export shows it (platform.md, rule 8): the
-- entry, its signed amount, and for a usage debit the usage row it charges for, as stored
-- (other kinds show no usage_record_id and no usage columns, so a row IS the expected line).
-- Columns in the order of bot.export.lines.ExportLine.
-- $1 org_id, $2 project_id or null, $3 first instant, $4 end (exclusive), $5 months 'YYYY-MM'
select e.ledger_entry_id,
       to_char(e.posted_at at time zone 'UTC', 'YYYY-MM') as billing_month,
       e.org_id,
       e.project_id,
       e.kind,
       case when e.direction = 'debit' then e.amount_minor else -e.amount_minor end as amount_minor,
       e.currency,
       case when e.kind = 'usage' then e.usage_record_id end as usage_record_id,
       u.usage_source,
       u.app_instance_id,
       u.component,
       u.control_plane_component,
       u.operating_mode,
       u.control_plane_scope,
       u.runtime_backend,
       u.resource_class,
       u.period_start,
       u.quantity,
       u.unit
from billing.ledger_entries e
left join billing.usage_records u
       on e.kind = 'usage' and u.usage_record_id = e.usage_record_id
where e.org_id = $1
  and ($2::text is null or e.project_id = $2)
  and e.posted_at >= $3 and e.posted_at < $4
  and to_char(e.posted_at at time zone 'UTC', 'YYYY-MM') = any($5::text[])
