-- Billing accounts of orgs. Index: primary key.
select b.org_id, b.currency
from billing.billing_accounts b
where b.org_id = any($1::text[])
order by b.org_id
