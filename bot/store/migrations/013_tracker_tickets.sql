-- 013_tracker_tickets: follow-up tickets in GitHub or Jira, one per incident and owning
-- layer (bot.tracker).
--
-- A row is written ('creating', attempted_at) before the tracker is asked to create the
-- ticket, and completed (key, url, 'open') after. A row left 'creating' means an attempt
-- may have created a ticket that was never stored: the next attempt looks for the
-- ticket's marker in the tracker before creating one (bot.tracker.ensure). Comments go
-- the same way: pending_comment_digest before, last_comment_digest after.
CREATE TABLE tracker_tickets (
    incident_id            text NOT NULL REFERENCES incidents (incident_id) ON DELETE CASCADE,
    owning_layer           text NOT NULL
                           CHECK (owning_layer IN ('metering_emitter', 'attribution_mapping',
                                                   'billing_worker', 'ui_export')),
    tracker                text NOT NULL CHECK (tracker IN ('github', 'jira')),
    target                 text NOT NULL,
    key                    text,
    url                    text,
    state                  text NOT NULL DEFAULT 'creating'
                           CHECK (state IN ('creating', 'open', 'recovered')),
    last_state             jsonb,
    last_comment_digest    text,
    pending_comment_digest text,
    attempts               integer NOT NULL DEFAULT 1,
    attempted_at           timestamptz NOT NULL DEFAULT now(),
    created_at             timestamptz,
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (incident_id, owning_layer),
    CHECK ((state = 'creating') = (key IS NULL)),
    CHECK ((key IS NULL) = (url IS NULL))
);
