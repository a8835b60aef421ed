-- 006_evidence_kinds: evidence also records failed source calls ('error'), the
-- customer-impact summary ('summary') and proposed corrections ('proposal').
ALTER TABLE evidence DROP CONSTRAINT evidence_kind_check;
ALTER TABLE evidence ADD CONSTRAINT evidence_kind_check
    CHECK (kind IN ('logql', 'trace', 'sql', 'error', 'summary', 'proposal'));
