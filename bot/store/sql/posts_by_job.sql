SELECT namespace, post_key, channel, thread_ts, ts, state FROM slack_posts WHERE namespace = $1 ORDER BY created_at
