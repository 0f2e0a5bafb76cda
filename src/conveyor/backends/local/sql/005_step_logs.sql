-- The embedded engine's schema, version 3: step logs.
--
-- A step's log lines (`context.logger`) are timeline entries of kind 'log', so a run's stream
-- carries them in order with everything else and they go when the run is pruned. This index
-- reads one step's lines (and sums their size, to keep each step's log bounded) without
-- walking the rest of the run's timeline.
CREATE INDEX run_events_logs ON run_events (run_id, step_id, idx, seq) WHERE kind = 'log';
