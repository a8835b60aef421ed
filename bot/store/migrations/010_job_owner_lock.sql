-- 010_job_owner_lock: a running job names its worker's advisory lock.
--
-- Each worker process holds a session advisory lock (class OWNER_LOCK_CLASS in
-- bot/store/jobs.py, key lease_lock) on a connection of its own for as long as it
-- lives. PostgreSQL releases the lock when that connection ends, so a running job
-- whose owner's lock is free has a dead owner: another worker takes it at once instead
-- of waiting for the lease to run out. NULL: the owner held no lock (lease only).

ALTER TABLE jobs ADD COLUMN lease_lock integer;
