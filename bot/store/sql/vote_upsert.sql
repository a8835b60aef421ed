INSERT INTO approval_votes (prompt_id, user_id, vote, via) VALUES ($1, $2, $3, $4)
ON CONFLICT (prompt_id, user_id) DO UPDATE SET vote = excluded.vote, via = excluded.via, created_at = now()
