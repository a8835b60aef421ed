-- 014_corrections: proposed ledger corrections decided like a freeze, and sealed once
-- approved.
--
-- A corrections prompt is an approval prompt of kind 'corrections' (same approvers,
-- votes, quorum, expiry, retraction and audit); its scope holds the proposals, the run
-- they came from and their digest. A newer diagnosis whose proposals differ supersedes
-- an open one ('superseded': votes on it no longer count).
ALTER TABLE approval_prompts DROP CONSTRAINT approval_prompts_kind_check;
ALTER TABLE approval_prompts ADD CONSTRAINT approval_prompts_kind_check
    CHECK (kind IN ('freeze', 'unfreeze', 'corrections'));
ALTER TABLE approval_prompts DROP CONSTRAINT approval_prompts_status_check;
ALTER TABLE approval_prompts ADD CONSTRAINT approval_prompts_status_check
    CHECK (status IN ('open', 'approved', 'declined', 'expired', 'superseded'));
ALTER TABLE approval_events DROP CONSTRAINT approval_events_type_check;
ALTER TABLE approval_events ADD CONSTRAINT approval_events_type_check
    CHECK (type IN ('prompt', 'vote', 'retract', 'decision', 'expiry', 'refusal', 'ignored', 'supersede'));

-- An approved batch: what was proposed, by which diagnosis run, who approved it with
-- which votes, and the SHA-256 of the proposals' canonical serialisation
-- (bot/render/corrections.py: canonical_proposals). Sealed: rows are only ever
-- inserted, in the transaction that decides the prompt; the triggers refuse UPDATE and
-- DELETE (the retention command alone may delete, with recon.allow_purge).
CREATE TABLE correction_batches (
    batch_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id text NOT NULL REFERENCES incidents ON DELETE CASCADE,
    prompt_id   bigint NOT NULL UNIQUE REFERENCES approval_prompts ON DELETE CASCADE,
    run_id      bigint,
    digest      text NOT NULL CHECK (digest ~ '^[0-9a-f]{64}$'),
    approved_by text[] NOT NULL,
    votes       jsonb NOT NULL,        -- {"U…": "approve", …} as they stood at the decision
    row_count   integer NOT NULL,
    sealed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX correction_batches_incident ON correction_batches (incident_id, batch_id);

CREATE TABLE correction_batch_rows (
    batch_id          bigint NOT NULL REFERENCES correction_batches ON DELETE CASCADE,
    position          integer NOT NULL,
    action            text NOT NULL,
    org_id            text NOT NULL,
    project_id        text NOT NULL,
    usage_record_id   text,
    reverses_entry_id text,
    amount_minor      bigint NOT NULL,
    currency          text NOT NULL,
    correlation_id    text,
    "check"           text NOT NULL,
    reason            text NOT NULL,
    PRIMARY KEY (batch_id, position)
);

CREATE TRIGGER correction_batches_sealed BEFORE UPDATE OR DELETE ON correction_batches
    FOR EACH ROW EXECUTE FUNCTION recon_append_only();
CREATE TRIGGER correction_batches_no_truncate BEFORE TRUNCATE ON correction_batches
    FOR EACH STATEMENT EXECUTE FUNCTION recon_append_only();
CREATE TRIGGER correction_batch_rows_sealed BEFORE UPDATE OR DELETE ON correction_batch_rows
    FOR EACH ROW EXECUTE FUNCTION recon_append_only();
CREATE TRIGGER correction_batch_rows_no_truncate BEFORE TRUNCATE ON correction_batch_rows
    FOR EACH STATEMENT EXECUTE FUNCTION recon_append_only();
