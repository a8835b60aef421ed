SELECT job_id, post_key, channel, thread_ts, ts, state FROM slack_posts WHERE job_id = $1 AND post_key = $2
