-- 004_approvals: freeze/unfreeze prompts decided by approvers, their append-only audit,
-- and the freezes of manual customer-facing adjustments that billing tools honour.

CREATE TABLE approval_prompts (
    prompt_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id  text NOT NULL REFERENCES incidents ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('freeze', 'unfreeze')),
    channel      text NOT NULL,
    thread_ts    text,
    message_ts   text,                 -- the prompt message; reactions on it are votes
    scope        jsonb NOT NULL,       -- {"orgs": [...], "projects": [[org, project]...], "app_instances": [[org, project, id]...]}
    reason       text NOT NULL,
    quorum       integer NOT NULL CHECK (quorum >= 1),
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'approved', 'declined', 'expired')),
    freeze_id    bigint,               -- unfreeze: the freeze it would lift; freeze: the freeze it made
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    decided_at   timestamptz,
    decided_by   text[] NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX approval_prompts_message ON approval_prompts (channel, message_ts) WHERE message_ts IS NOT NULL;
CREATE UNIQUE INDEX approval_prompts_one_open ON approval_prompts (incident_id, kind) WHERE status = 'open';

-- Current votes: one per (prompt, user); a retraction deletes it (and is audited below).
CREATE TABLE approval_votes (
    prompt_id  bigint NOT NULL REFERENCES approval_prompts ON DELETE CASCADE,
    user_id    text NOT NULL,
    vote       text NOT NULL CHECK (vote IN ('approve', 'decline')),
    via        text NOT NULL CHECK (via IN ('reaction', 'button')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (prompt_id, user_id)
);

-- Every vote, retraction, decision, expiry and refusal, with who, when and which message.
-- Append-only like the timeline; dedup_key makes a repeated Slack event count once.
CREATE TABLE approval_events (
    event_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    prompt_id   bigint NOT NULL REFERENCES approval_prompts ON DELETE CASCADE,
    incident_id text NOT NULL,
    type        text NOT NULL CHECK (type IN ('prompt', 'vote', 'retract', 'decision', 'expiry', 'refusal',
                                              'ignored')),
    user_id     text,
    vote        text,
    via         text,
    channel     text,
    message_ts  text,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    dedup_key   text UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX approval_events_prompt ON approval_events (prompt_id, event_id);
CREATE TRIGGER approval_events_append_only BEFORE UPDATE OR DELETE ON approval_events
    FOR EACH ROW EXECUTE FUNCTION recon_append_only();

CREATE TABLE freezes (
    freeze_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incident_id    text NOT NULL REFERENCES incidents,
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'lifted')),
    scope          jsonb NOT NULL,
    reason         text NOT NULL,
    approved_by    text[] NOT NULL,
    prompt_id      bigint REFERENCES approval_prompts,
    frozen_at      timestamptz NOT NULL DEFAULT now(),
    lifted_at      timestamptz,
    lifted_by      text[],
    lift_prompt_id bigint REFERENCES approval_prompts
);
-- What a freeze covers, one row per org / project / app instance, for the freeze API's filters.
CREATE TABLE freeze_scopes (
    freeze_id       bigint NOT NULL REFERENCES freezes ON DELETE CASCADE,
    org_id          text NOT NULL,
    project_id      text,
    app_instance_id text
);
CREATE INDEX freeze_scopes_org_project ON freeze_scopes (org_id, project_id);
