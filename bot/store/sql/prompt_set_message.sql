UPDATE approval_prompts SET message_ts = $2 WHERE prompt_id = $1
