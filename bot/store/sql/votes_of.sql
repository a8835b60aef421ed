SELECT user_id, vote, via, created_at FROM approval_votes WHERE prompt_id = $1 ORDER BY created_at
