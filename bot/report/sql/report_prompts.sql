-- The incident's freeze / unfreeze prompts with their current votes.
SELECT p.prompt_id, p.kind, p.channel, p.thread_ts, p.message_ts, p.scope, p.reason, p.quorum, p.status,
       p.freeze_id, p.created_at, p.expires_at, p.decided_at, p.decided_by,
       coalesce((SELECT jsonb_agg(jsonb_build_object('user_id', v.user_id, 'vote', v.vote, 'via', v.via,
                                                     'created_at', v.created_at)
                                  ORDER BY v.created_at, v.user_id)
                 FROM approval_votes v WHERE v.prompt_id = p.prompt_id), '[]'::jsonb) AS votes
FROM approval_prompts p
WHERE p.incident_id = $1
ORDER BY p.prompt_id
