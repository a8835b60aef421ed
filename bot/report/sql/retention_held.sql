-- Which of the incidents $1 still have an active freeze (they are kept).
SELECT DISTINCT incident_id FROM freezes WHERE status = 'active' AND incident_id = ANY($1::text[])
