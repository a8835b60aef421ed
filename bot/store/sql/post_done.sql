UPDATE slack_posts SET ts = $3, state = 'posted', posted_at = now()
WHERE namespace = $1 AND post_key = $2
