DELETE FROM approval_votes WHERE prompt_id = $1 AND user_id = $2 AND vote = $3 RETURNING user_id
