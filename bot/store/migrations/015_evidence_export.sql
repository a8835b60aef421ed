-- 015_evidence_export: evidence also records the usage exports a diagnosis read ('export':
-- origin, org, months, lines, SHA-256, breaks), as platform.md's rule 8 asks.
ALTER TABLE evidence DROP CONSTRAINT evidence_kind_check;
ALTER TABLE evidence ADD CONSTRAINT evidence_kind_check
    CHECK (kind IN ('logql', 'trace', 'sql', 'error', 'summary', 'proposal', 'export'));
