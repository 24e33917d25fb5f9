-- The id of the migration.approved event a rollout started from: the cause of its first
-- event, so a replay links the rollout to the approval (each later step names the one
-- before it).
ALTER TABLE rollouts ADD COLUMN cause_id text;
