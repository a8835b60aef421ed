-- 005_report: the per-install secret that signs incident report links.
--
-- RECON_REPORT_SECRET, when set, signs the links; otherwise recon draws 32 random bytes
-- once and keeps them here (one row), so links stay valid across restarts and across the
-- processes sharing this store. Deleting the row revokes every link issued with it.

CREATE TABLE report_secret (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    secret     bytea NOT NULL CHECK (octet_length(secret) >= 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
