-- export_lines: as export_entries (the same entries, the same values), each entry as its
-- id and the canonical text of the line a faithful export shows for it: the row's output
-- (record_out) of the line's values in bot.export.lines.COLUMNS order, spelled as
-- bot.export.canon says (which writes the same text in Python): amount signed, the
-- boolean true/false, period_start RFC 3339 UTC, quantity with six decimals (or all of
-- them when it has more). The server writes the text: the reader only hashes it.
-- Read with COPY (…) TO STDOUT (its values quoted in by asyncpg, the comments taken out
-- first), one run of consecutive months at a time: [$3, $4) is whole months, so no
-- filter on the month itself (with one, the row estimate is off a hundredfold and the
-- planner never reads in parallel).
-- $1 org_id, $2 project_id or null, $3 first instant, $4 end (exclusive)
select e.ledger_entry_id,
       row(e.ledger_entry_id,
           to_char(e.posted_at at time zone 'UTC', 'YYYY-MM'),
           e.org_id,
           e.project_id,
           e.kind,
           case when e.direction = 'debit' then e.amount_minor else -e.amount_minor end,
           e.currency,
           case when e.kind = 'usage' then e.usage_record_id end,
           u.usage_source,
           u.app_instance_id,
           u.component,
           case when u.control_plane_component then 'true'
                when not u.control_plane_component then 'false' end,
           u.operating_mode,
           u.control_plane_scope,
           u.runtime_backend,
           u.resource_class,
           to_char(u.period_start at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
           || case when extract(microseconds from u.period_start)::bigint % 1000000 <> 0
                   then rtrim(to_char(u.period_start at time zone 'UTC', '.US'), '0') else '' end
           || 'Z',
           case when trim_scale(u.quantity) = round(u.quantity, 6) then round(u.quantity, 6)::text
                else trim_scale(u.quantity)::text end,
           u.unit)::text as line
from billing.ledger_entries e
left join billing.usage_records u
       on e.kind = 'usage' and u.usage_record_id = e.usage_record_id
where e.org_id = $1
  and ($2::text is null or e.project_id = $2)
  and e.posted_at >= $3 and e.posted_at < $4
