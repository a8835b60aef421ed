-- Every rate card (all periods) of the given currencies. Columns in RateCard field order.
select r.rate_card_id, r.resource_class, r.usage_source, r.control_plane,
       r.control_plane_scope, r.unit, r.unit_price_micros, r.currency, r.effective_from,
       r.effective_to
from billing.rate_cards r
where r.currency = any($1::text[])
order by r.currency, r.resource_class, r.usage_source, r.control_plane, r.effective_from,
         r.rate_card_id
