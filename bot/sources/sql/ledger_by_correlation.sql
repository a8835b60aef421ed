-- Ledger entries carrying a correlation id, posted in [$2, $3): the caller widens the
-- diagnosis window by a day on each side (usage is posted after its hour, corrections
-- later). Columns in LedgerEntry field order. Index: ledger_entries (correlation_id).
select l.ledger_entry_id, l.org_id, l.project_id, l.usage_record_id, l.direction, l.kind,
       l.amount_minor, l.currency, l.reverses_entry_id, l.idempotency_key, l.correlation_id,
       l.description, l.posted_at
from billing.ledger_entries l
where l.correlation_id = $1
  and l.posted_at >= $2
  and l.posted_at < $3
order by l.posted_at, l.ledger_entry_id
