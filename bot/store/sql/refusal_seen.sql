-- Whether this user was already answered that they cannot decide this prompt.
SELECT EXISTS (SELECT 1 FROM approval_events WHERE prompt_id = $1 AND user_id = $2 AND type = 'refusal')
