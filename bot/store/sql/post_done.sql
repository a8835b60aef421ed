UPDATE slack_posts SET ts = $3, state = 'posted', posted_at = now()
WHERE job_id = $1 AND post_key = $2
