-- What retention_batch_slack_events would delete, all batches together.
SELECT count(*) FROM slack_events WHERE received_at < $1
