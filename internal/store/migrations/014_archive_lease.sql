-- 014: an archive copy in progress holds a lease on its entry, so that a
-- second run of the same entry (a rescued job whose first run is still
-- copying) waits instead of writing the same key concurrently. A lease,
-- not a lock held on a connection: the copy holds no pool connection
-- while it talks to S3, and a process that dies leaves a lease that
-- expires after the step timeout.
ALTER TABLE entries ADD COLUMN archiving_until timestamptz;
