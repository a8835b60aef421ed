-- Keep $1 as the per-install report-link secret unless another process drew one first;
-- either way, the secret in force.
WITH ins AS (
    INSERT INTO report_secret (singleton, secret) VALUES (true, $1)
    ON CONFLICT (singleton) DO NOTHING
    RETURNING secret
)
SELECT secret FROM ins
UNION ALL
SELECT secret FROM report_secret WHERE singleton AND NOT EXISTS (SELECT 1 FROM ins)
