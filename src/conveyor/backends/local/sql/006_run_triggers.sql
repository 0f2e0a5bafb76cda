-- The embedded engine's schema, version 6: runs carry their trigger.
--
-- `trigger` says what started the run (manual, schedule, webhook, event), `trigger_id` which
-- schedule, webhook or event trigger, and `trigger_time` the slot a schedule's run is for, as
-- ISO 8601 in UTC. Runs from before are manual.

ALTER TABLE runs ADD COLUMN trigger TEXT NOT NULL DEFAULT 'manual';
ALTER TABLE runs ADD COLUMN trigger_id TEXT;
ALTER TABLE runs ADD COLUMN trigger_time TEXT;

CREATE INDEX runs_by_trigger ON runs (trigger, trigger_id, created_at);
