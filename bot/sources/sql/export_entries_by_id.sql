-- export_entries_by_id: the lines a faithful export shows for the named entries of an
-- org, as export_entries has them (typed, bot.export.lines.ExportLine's order): the
-- stored side of the few breaks put in words.
-- $1 org_id, $2 ledger_entry_ids
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
  and e.ledger_entry_id = any($2::text[])
order by e.ledger_entry_id
