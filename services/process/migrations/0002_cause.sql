-- The id of the backup.verified event a health gate opened on: the cause of infra.ready.
ALTER TABLE gates ADD COLUMN cause_id text;
