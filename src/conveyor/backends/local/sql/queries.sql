-- Named queries of the embedded engine; `-- name:` starts each one.

-- name: insert_pipeline
INSERT OR IGNORE INTO pipelines (hash, name, version, document, created_at)
VALUES (:hash, :name, :version, :document, :created_at);

-- name: get_pipeline
SELECT document FROM pipelines WHERE hash = ?;

-- name: insert_run
INSERT INTO runs (id, pipeline_hash, pipeline_name, kind, status, params, created_at,
                  idempotency_key, owner, labels, retry_of, trigger, trigger_id, trigger_time)
VALUES (:id, :pipeline_hash, :pipeline_name, :kind, :status, :params, :created_at,
        :idempotency_key, :owner, :labels, :retry_of, :trigger, :trigger_id, :trigger_time);

-- name: run_by_idempotency_key
SELECT id FROM runs WHERE idempotency_key = ?;

-- name: update_run
UPDATE runs SET status = :status, outputs = :outputs, error = :error, failed_step = :failed_step,
       started_at = :started_at, finished_at = :finished_at, deadline_at = :deadline_at
WHERE id = :id;

-- name: get_run
SELECT * FROM runs WHERE id = ?;

-- name: upsert_unit
INSERT INTO units (run_id, step_id, idx, status, data) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (run_id, step_id, idx) DO UPDATE SET status = excluded.status, data = excluded.data;

-- name: units_of_run
SELECT step_id, idx, data FROM units WHERE run_id = ? ORDER BY step_id, idx;

-- name: unfinished_runs
SELECT id FROM runs WHERE status IN ('pending', 'running') ORDER BY created_at;

-- name: runs_with_running_units
SELECT DISTINCT units.run_id FROM units JOIN runs ON runs.id = units.run_id
WHERE units.status = 'running' AND runs.status = 'running';

-- name: pending_runs
SELECT id FROM runs WHERE status = 'pending' ORDER BY created_at;

-- name: insert_run_event
INSERT INTO run_events (run_id, at, kind, step_id, idx, data) VALUES (?, ?, ?, ?, ?, ?);

-- name: run_events_of
SELECT seq, run_id, at, kind, step_id, idx, data FROM run_events
WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?;

-- name: run_events_since
SELECT e.seq, e.run_id, e.at, e.kind, e.step_id, e.idx, e.data
FROM run_events AS e JOIN runs AS r ON r.id = e.run_id
WHERE e.seq > :after AND (:owner IS NULL OR r.owner = :owner)
ORDER BY e.seq LIMIT :limit;

-- name: last_run_event_seq
SELECT coalesce(max(seq), 0) FROM run_events;

-- name: insert_wait
INSERT OR REPLACE INTO waits (correlation_id, run_id, step_id, idx, attempt, since)
VALUES (?, ?, ?, ?, ?, ?);

-- name: delete_wait
DELETE FROM waits WHERE correlation_id = ? AND run_id = ? AND step_id = ? AND idx = ?;

-- name: waiting_runs
SELECT run_id FROM waits GROUP BY run_id ORDER BY min(since), run_id LIMIT ?;

-- name: waits_for
SELECT run_id, step_id, idx, attempt FROM waits WHERE correlation_id = ?;

-- name: set_timer
INSERT OR REPLACE INTO timers (run_id, step_id, idx, fire_at) VALUES (?, ?, ?, ?);

-- name: clear_timer
DELETE FROM timers WHERE run_id = ? AND step_id = ? AND idx = ?;

-- name: clear_fired_timer
DELETE FROM timers WHERE run_id = ? AND step_id = ? AND idx = ? AND fire_at <= ?;

-- name: timers_due_before
SELECT run_id, step_id, idx, fire_at FROM timers WHERE fire_at < ? ORDER BY fire_at;

-- name: insert_event
INSERT OR IGNORE INTO events (id, correlation_id, type, source, data, received_at, expires_at,
                              status)
VALUES (:id, :correlation_id, :type, :source, :data, :received_at, :expires_at, :status);

-- name: event_seq
SELECT seq, status FROM events WHERE id = ?;

-- name: set_event_status
UPDATE events SET status = ? WHERE seq = ?;

-- name: pending_events_for
SELECT seq FROM events WHERE correlation_id = ? AND status = 'pending' AND expires_at > ?
ORDER BY seq;

-- name: expire_events
UPDATE events SET status = 'expired' WHERE status = 'pending' AND expires_at <= ?;

-- name: get_event
SELECT * FROM events WHERE seq = ?;

-- name: insert_delivery
INSERT OR IGNORE INTO deliveries (event_seq, run_id, step_id, idx, attempt, status)
VALUES (?, ?, ?, ?, ?, 'planned');

-- name: finish_delivery
UPDATE deliveries SET status = 'done'
WHERE event_seq = ? AND run_id = ? AND step_id = ? AND idx = ?;

-- name: planned_deliveries
SELECT event_seq, run_id, step_id, idx, attempt FROM deliveries WHERE status = 'planned'
ORDER BY event_seq;

-- name: insert_inbox
INSERT INTO inbox (kind, payload, created_at) VALUES (?, ?, ?);

-- name: take_inbox
DELETE FROM inbox WHERE seq <= ? RETURNING seq, kind, payload;

-- name: max_inbox
SELECT max(seq) FROM inbox;

-- name: get_lock
SELECT pid, token, host, started_at FROM engine_lock WHERE id = 1;

-- name: take_lock
INSERT OR REPLACE INTO engine_lock (id, pid, token, host, started_at) VALUES (1, ?, ?, ?, ?);

-- name: release_lock
DELETE FROM engine_lock WHERE id = 1 AND token = ?;

-- service

-- name: catalog_insert_pipeline
INSERT INTO catalog_pipelines (id, owner, name, latest_version, description, created_at,
                               updated_at, shared)
VALUES (:id, :owner, :name, 1, :description, :now, :now, :shared);

-- name: catalog_insert_version
INSERT INTO catalog_versions (pipeline_id, version, document, created_at)
VALUES (?, ?, ?, ?);

-- name: catalog_bump_version
UPDATE catalog_pipelines SET latest_version = :version, name = :name,
       description = :description, updated_at = :now
WHERE id = :id;

-- name: catalog_get_pipeline
SELECT p.id, p.owner, p.name, p.latest_version, p.description, p.created_at, p.updated_at,
       p.shared, v.version, v.document
FROM catalog_pipelines p JOIN catalog_versions v ON v.pipeline_id = p.id
WHERE p.id = ? AND v.version = coalesce(?, p.latest_version);

-- name: catalog_id_by_name
SELECT id FROM catalog_pipelines WHERE owner = ? AND name = ?;

-- name: catalog_shared_id_by_name
SELECT id FROM catalog_pipelines WHERE shared = 1 AND name = ? ORDER BY created_at, owner LIMIT 1;

-- name: catalog_set_shared
UPDATE catalog_pipelines SET shared = :shared WHERE id = :id;

-- name: catalog_list
SELECT id, owner, name, latest_version, description, created_at, updated_at, shared
FROM catalog_pipelines
WHERE (:owner IS NULL OR owner = :owner OR shared = 1) AND (:name IS NULL OR name = :name)
ORDER BY name, owner, id LIMIT :limit OFFSET :offset;

-- name: catalog_count
SELECT count(*) FROM catalog_pipelines
WHERE (:owner IS NULL OR owner = :owner OR shared = 1) AND (:name IS NULL OR name = :name);

-- name: catalog_versions_of
SELECT version, created_at FROM catalog_versions WHERE pipeline_id = ? ORDER BY version DESC;

-- name: catalog_delete_pipeline
DELETE FROM catalog_pipelines WHERE id = ?;

-- name: key_insert
INSERT INTO api_keys (id, owner, scope, secret_hash, created_at) VALUES (?, ?, ?, ?, ?);

-- name: key_get
SELECT id, owner, scope, secret_hash, created_at, revoked_at FROM api_keys WHERE id = ?;

-- name: key_list
SELECT id, owner, scope, secret_hash, created_at, revoked_at FROM api_keys ORDER BY created_at;

-- name: key_revoke
UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL;

-- name: runs_count
SELECT count(*) FROM runs
WHERE (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
  AND (:pipeline IS NULL OR pipeline_name = :pipeline)
  AND (:owner IS NULL OR owner = :owner)
  AND (:kind IS NULL OR kind = :kind)
  AND (:trigger IS NULL OR trigger = :trigger)
  AND (:trigger_id IS NULL OR trigger_id = :trigger_id)
  AND (:created_after IS NULL OR created_at >= :created_after)
  AND (:created_before IS NULL OR created_at < :created_before);

-- name: runs_by_status
SELECT status, count(*) FROM runs GROUP BY status;

-- name: events_by_status
SELECT status, count(*) FROM events GROUP BY status;

-- step logs

-- name: log_usage
SELECT coalesce(sum(length(CAST(json_extract(data, '$.message') AS BLOB))), 0),
       max(coalesce(json_extract(data, '$.truncated'), 0))
FROM run_events WHERE kind = 'log' AND run_id = ? AND step_id = ? AND idx IS ?;

-- name: logs_of_run
SELECT seq, at, step_id, idx, data FROM run_events
WHERE kind = 'log' AND run_id = :run_id AND (:step_id IS NULL OR step_id = :step_id)
  AND seq > :after
ORDER BY seq LIMIT :limit;
