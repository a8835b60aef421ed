-- The audit of the incident's approval prompts: votes, retractions, decisions, expiries.
SELECT e.event_id, e.prompt_id, e.type, e.user_id, e.vote, e.via, e.channel, e.message_ts, e.details,
       e.created_at
FROM approval_events e
JOIN approval_prompts p ON p.prompt_id = e.prompt_id
WHERE p.incident_id = $1
ORDER BY e.created_at, e.event_id
