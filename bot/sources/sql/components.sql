-- Components of app instances. Columns in Component field order. Index: primary key.
select c.app_instance_id, c.component, c.control_plane, c.resource_class
from billing.app_instance_components c
where c.app_instance_id = any($1::text[])
order by c.app_instance_id, c.component
