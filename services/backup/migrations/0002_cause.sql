-- The id of the event a backup run or restore started from (deploy.completed,
-- backup.restore.requested): the cause of what the run says.
ALTER TABLE backup_runs ADD COLUMN cause_id text;
ALTER TABLE restores ADD COLUMN cause_id text;
